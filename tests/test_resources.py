"""The resources, tested with Dagster's testing APIs and swapped for mocks."""

import os

import pytest
from dagster import (
    AssetKey,
    DagsterResourceFunctionError,
    build_init_resource_context,
    build_resources,
    materialize,
)

from dagster_project.defs.ingest.assets import raw_tables
from dagster_project.defs.ingest.data_source import DataSourceError, LocalDataSource
from dagster_project.defs.ingest.tables import INGEST_CODE_VERSION
from dagster_project.warehouse.duckdb import DuckDBWarehouse
from tests.mocks import InMemoryDataSource

TINY_SHOP = {
    "raw_customers.csv": "id,first_name,last_name\n1,Ada,L.\n2,Alan,T.\n",
    "raw_orders.csv": "id,user_id,order_date,status\n1,1,2024-01-02,placed\n2,2,2024-01-03,returned\n",
    "raw_payments.csv": "id,order_id,payment_method,amount\n1,1,coupon,500\n2,2,gift_card,1200\n",
}


@pytest.fixture
def tiny_shop(tmp_path) -> InMemoryDataSource:
    spool = tmp_path / "spool"
    spool.mkdir()
    return InMemoryDataSource(files=TINY_SHOP, spool_dir=str(spool))


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=str(tmp_path / "mock.duckdb"), lock_timeout=5)


def rows(warehouse: DuckDBWarehouse, sql: str) -> list[tuple]:
    with warehouse.get_connection(read_only=True) as conn:
        return conn.execute(sql).fetchall()


# The data source's lifecycle and its three operations.


def test_setup_refuses_a_missing_folder_naming_jaffle_data_dir(tmp_path):
    source = LocalDataSource(directory=str(tmp_path / "nowhere"))
    with pytest.raises(DataSourceError) as error:
        source.setup_for_execution(build_init_resource_context())
    assert str(error.value) == (
        f"The data folder {tmp_path / 'nowhere'} does not exist "
        f"(JAFFLE_DATA_DIR={str(tmp_path / 'nowhere')!r}). "
        "Point JAFFLE_DATA_DIR at a folder holding the raw CSV files."
    )


def test_setup_accepts_an_existing_folder_and_resolves_it(project_env):
    source = LocalDataSource(directory=str(project_env.data_dir))
    source.setup_for_execution(build_init_resource_context())
    assert source.root == project_env.data_dir
    assert source.list_files() == ["raw_customers.csv", "raw_orders.csv", "raw_payments.csv"]


def test_build_resources_runs_setup_and_fails_a_run_before_any_asset(tmp_path):
    gone = LocalDataSource(directory=str(tmp_path / "gone"))
    with pytest.raises(DagsterResourceFunctionError) as error, build_resources({"data_source": gone}):
        pass
    assert "JAFFLE_DATA_DIR" in str(error.value.__cause__)


def test_build_resources_gives_configured_resources_that_work_together(project_env):
    with build_resources(
        {
            "data_source": LocalDataSource(directory=str(project_env.data_dir)),
            "duckdb": project_env.warehouse(),
        }
    ) as resources:
        path = resources.data_source.local_path("raw_customers.csv")
        with resources.duckdb.get_connection() as conn:
            (count,) = conn.execute("select count(*) from read_csv(?)", [str(path)]).fetchone()
    assert count == 100


def test_the_local_source_lists_only_csv_files_sorted(tmp_path):
    (tmp_path / "b.csv").write_text("x\n")
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / "notes.txt").write_text("not data")
    (tmp_path / "folder.csv").mkdir()
    assert LocalDataSource(directory=str(tmp_path)).list_files() == ["a.csv", "b.csv"]


def test_the_local_source_opens_a_file_and_names_a_missing_one(tmp_path):
    (tmp_path / "raw_orders.csv").write_text("id\n1\n")
    source = LocalDataSource(directory=str(tmp_path))
    assert source.local_path("raw_orders.csv").read_text() == "id\n1\n"
    with pytest.raises(DataSourceError, match=f"{tmp_path} has no raw_payments.csv.*JAFFLE_DATA_DIR"):
        source.local_path("raw_payments.csv")


def test_the_fingerprint_follows_the_content_not_the_file_time(tmp_path):
    path = tmp_path / "raw_orders.csv"
    source = LocalDataSource(directory=str(tmp_path))
    path.write_text("id\n1\n")
    before = source.fingerprint("raw_orders.csv")
    os.utime(path, (0, 0))
    assert source.fingerprint("raw_orders.csv") == before
    path.write_text("id\n2\n")
    assert source.fingerprint("raw_orders.csv") != before


# Assets with mock resources.


def test_materializing_the_raw_assets_with_overridden_resources(instance, tiny_shop, warehouse):
    result = materialize(
        [raw_tables],
        resources={"duckdb": warehouse, "data_source": tiny_shop},
        instance=instance,
    )
    assert result.success
    assert rows(warehouse, "select count(*) from raw_customers") == [(2,)]
    assert rows(warehouse, "select sum(amount) from raw_payments") == [(1700,)]
    checks = {
        (check.asset_key.to_user_string(), check.check_name): check.passed
        for check in result.get_asset_check_evaluations()
    }
    assert checks[("raw_payments", "order_id_exists_in_raw_orders")] is True
    assert len(checks) == 12 and all(checks.values())
    recorded = instance.get_latest_materialization_event(AssetKey("raw_customers"))
    data_version = recorded.asset_materialization.tags["dagster/data_version"]
    assert data_version == f"{INGEST_CODE_VERSION}:{tiny_shop.fingerprint('raw_customers.csv')}"


# The UI's Definitions → Resources view, read through the same GraphQL API the UI uses.

RESOURCE_USES = """
query ResourceUses($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    ... on ResourceDetails {
      configuredValues { key }
      assetKeysUsing { path }
      schedulesUsing
      sensorsUsing
    }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture
def resource_view(ui_graphql):
    def uses(resource: str) -> dict:
        selector = {**ui_graphql.repository, "resourceName": resource}
        details = ui_graphql(RESOURCE_USES, selector=selector)["topLevelResourceDetailsOrError"]
        assert "message" not in details, details.get("message")
        return {
            "config": {value["key"] for value in details["configuredValues"]},
            "assets": {"/".join(key["path"]) for key in details["assetKeysUsing"]},
            "schedules": set(details["schedulesUsing"]),
            "sensors": set(details["sensorsUsing"]),
        }

    return uses


RAW_KEYS = {"raw_customers", "raw_orders", "raw_payments"}
DBT_KEYS = {"stg_customers", "stg_orders", "stg_payments", "customers", "orders"}


def test_the_resource_view_lists_what_uses_each_resource(resource_view):
    assert resource_view("data_source") == {
        "config": {"directory"},
        "assets": RAW_KEYS,
        "schedules": set(),
        "sensors": {"raw_files_sensor"},
    }
    duckdb = resource_view("duckdb")
    assert duckdb["assets"] == RAW_KEYS | DBT_KEYS | {"order_count_chart"}
    assert "database" in duckdb["config"]
    dbt = resource_view("dbt")
    assert dbt["assets"] == DBT_KEYS
    assert {"project_dir", "target"} <= dbt["config"]
    assert resource_view("report") == {
        "config": {"directory", "open_in_browser", "has_display"},
        "assets": {"order_count_chart"},
        "schedules": set(),
        "sensors": set(),
    }
