"""JAFFLE_ENV=spark: the same pipeline on a real Spark Connect server, and the same promises.

One Spark run of Materialize all on the sample data is shared by the module (a run costs tens
of seconds); the two failure tests start from what it published and end where they started.
Spark's databases are the server's, not the test's, so the module starts from empty ones. The
run has a token set, as a remote cluster's run would: none of what it leaves may show it.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dagster import AssetKey, Definitions, ExecuteInProcessResult

from dagster_project.definitions import build_defs
from dagster_project.defs.ingest.assets import RAW_KEYS
from dagster_project.defs.ingest.input_contract import EXPECTED
from dagster_project.settings import load_settings
from dagster_project.warehouse import version_name
from dagster_project.warehouse.spark import SparkWarehouse, repointed
from tests.helpers import PROJECT_ASSETS, ProjectEnv, make_project_env, materialize_raw
from tests.test_spark_url import TOKEN, leaked

pytestmark = pytest.mark.spark

MARTS = {"customers": "customer_id", "orders": "order_id"}
# Published as views of their own over the versions they read (their SQL re-pointed by sqlglot).
STAGING = {"stg_customers": "customer_id", "stg_orders": "order_id", "stg_payments": "payment_id"}


@dataclass
class SparkRun:
    env: ProjectEnv
    warehouse: SparkWarehouse
    defs: Definitions
    result: ExecuteInProcessResult

    def query(self, sql: str) -> list[tuple]:
        with self.warehouse.session() as session:
            return session.query(sql)[1]

    def published(self) -> dict[str, list[tuple]]:
        """Every published table and view, row for row."""
        return {
            name: sorted(self.query(f"select * from jaffle.{name}"), key=repr)
            for name in ("raw_customers", "raw_orders", "raw_payments", *MARTS)
        }

    def rerun(self, selection: list[AssetKey]) -> ExecuteInProcessResult:
        """Materialize selected, on the module's project, as a later run in the UI would."""
        with self.env.instance() as instance:
            return self.defs.resolve_job_def("jaffle_shop_job").execute_in_process(
                instance=instance, asset_selection=selection, raise_on_error=False
            )


def failure_messages(result: ExecuteInProcessResult) -> list[str]:
    return [
        str((event.step_failure_data.error.cause or event.step_failure_data.error).message)
        for event in result.get_step_failure_events()
    ]


@pytest.fixture(scope="module")
def spark_run(spark_connect: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkRun]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_project_env(tmp_path_factory.mktemp("spark_run"), monkeypatch)
        monkeypatch.setenv("JAFFLE_ENV", "spark")
        # pyspark sends a token to localhost (over a local channel, which this server accepts
        # without checking it) and to TLS servers only: the run's sessions and dbt's carry it.
        monkeypatch.setenv("SPARK_REMOTE", spark_connect.replace("//127.0.0.1:", "//localhost:"))
        monkeypatch.setenv("SPARK_CONNECT_TOKEN", TOKEN)
        warehouse = SparkWarehouse(remote=spark_connect, lease_file=str(env.root / "spark.run-lease"))
        with warehouse.session() as session:
            for database in ("jaffle", "jaffle_build"):
                session.sql(f"drop database if exists {database} cascade")
        defs = build_defs(load_settings())
        with env.instance() as instance:
            result = defs.resolve_job_def("jaffle_shop_job").execute_in_process(
                instance=instance, raise_on_error=False
            )
            yield SparkRun(env, warehouse, defs, result)
        warehouse.close()


def test_materialize_all_on_spark_equals_duckdb_value_for_value(spark_run, sample_run):
    assert spark_run.result.success
    materialized = {
        event.asset_key.to_user_string() for event in spark_run.result.get_asset_materialization_events()
    }
    assert materialized == set(PROJECT_ASSETS)
    for mart, key in {**MARTS, **STAGING}.items():
        on_spark = spark_run.query(f"select * from jaffle.{mart} order by {key}")
        on_duckdb = sample_run.env.query(f"select * from main.{mart} order by {key}")
        assert len(on_spark) == len(on_duckdb) > 0
        assert on_spark == on_duckdb, mart
    chart = spark_run.env.chart_dir / "order_count_chart.html"
    assert "100 customers" in chart.read_text(encoding="utf-8")


def test_the_catalog_shows_the_rows_columns_and_spark_types_of_what_was_published(spark_run):
    with spark_run.env.instance() as instance:

        def metadata(key: str) -> dict:
            return instance.get_latest_materialization_event(AssetKey(key)).asset_materialization.metadata

        raw_orders, customers = metadata("raw_orders"), metadata("customers")
    assert raw_orders["dagster/row_count"].value == 99
    assert [(c.name, c.type) for c in raw_orders["dagster/column_schema"].schema.columns] == [
        ("id", "int"),
        ("user_id", "int"),
        ("order_date", "date"),
        ("status", "string"),
    ]
    assert customers["dagster/row_count"].value == 100
    types = {c.name: c.type for c in customers["dagster/column_schema"].schema.columns}
    assert types["number_of_orders"] == "bigint"
    assert types["customer_lifetime_value"] == "decimal(16,2)"


def test_the_build_database_lists_its_tables_and_views_and_no_sessions_temporary_view(spark_run):
    run_id = spark_run.result.run_id
    with spark_run.warehouse.session() as session:
        session.sql("create or replace temporary view scratch as select 1 as x")
        try:
            objects = session.build_objects()
        finally:
            session.sql("drop view if exists scratch")
    assert "scratch" not in objects
    # What the run left: its versions (tables for the marts and raw tables, views for staging),
    # the pointers dbt read (views), and no state table.
    assert {objects[version_name(name, run_id)] for name in ("customers", "orders", "raw_customers")} == {
        "table"
    }
    assert objects[version_name("stg_orders", run_id)] == "view"
    assert objects["raw_orders"] == "view"
    assert "wap_state" not in objects


def test_a_view_version_reads_the_versions_its_pointers_named_and_nothing_else_changes():
    view = (
        "with source as (select * from jaffle_build.raw_orders) "
        "select id, 'jaffle_build.raw_orders' as raw_orders from source join other.raw_orders on true"
    )
    assert repointed(view, "jaffle_build", {"raw_orders": "raw_orders__1"}) == (
        "WITH source AS (SELECT * FROM `jaffle_build`.`raw_orders__1`) "
        "SELECT id, 'jaffle_build.raw_orders' AS raw_orders FROM source JOIN other.raw_orders ON TRUE"
    )


def test_a_successful_run_with_a_token_leaves_it_in_no_log_or_file(spark_run):
    assert spark_run.result.success
    with spark_run.env.instance() as instance:
        records = instance.all_logs(spark_run.result.run_id)
        assert records
        assert not any(leaked(repr(record)) for record in records)
        assert not leaked(repr(instance.get_run_by_id(spark_run.result.run_id)))
    # dbt's log and target folder (beside the run lease), the compute logs and the run storage in
    # DAGSTER_HOME, the chart: everything the run left in the project folder.
    dbt_log = spark_run.env.database.with_name("spark.dbt-target") / "dbt.log"
    assert "jaffle_build" in dbt_log.read_text(encoding="utf-8")
    for path in spark_run.env.root.rglob("*"):
        if path.is_file():
            assert not leaked(path.read_bytes().decode(errors="replace")), path


def materializations_recorded(env: ProjectEnv) -> list[str]:
    """The raw assets the run's catalog shows a materialization of: none, when nothing was published."""
    with env.instance() as instance:
        return sorted(
            key.to_user_string() for key in RAW_KEYS if instance.get_latest_materialization_event(key)
        )


def raw_run_on_spark(spark_run: SparkRun, tmp_path, raw_orders: str):
    """Materialize the three raw assets from a copy of the sample with ``raw_orders`` replaced.

    One customer is renamed too, so that publishing the customers, loaded before the orders,
    would show.
    """
    env = make_project_env(tmp_path)
    (env.data_dir / "raw_orders.csv").write_text(raw_orders, encoding="utf-8")
    customers = env.data_dir / "raw_customers.csv"
    renamed = customers.read_text(encoding="utf-8").replace("\n1,Michael,", "\n1,Michelle,", 1)
    assert renamed != customers.read_text(encoding="utf-8")
    customers.write_text(renamed, encoding="utf-8")
    return materialize_raw(
        env,
        ["raw_customers", "raw_orders", "raw_payments"],
        duckdb=spark_run.warehouse,
        raise_on_error=False,
    ), env


def test_a_bad_file_on_spark_fails_naming_the_file_and_line_and_publishes_nothing(spark_run, tmp_path):
    before = spark_run.published()
    result, env = raw_run_on_spark(
        spark_run, tmp_path, "id,user_id,order_date,status\n1,1,2018-01-01,placed\n2,3,2018-13-45,placed\n"
    )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = str(failure.step_failure_data.error.cause.message)
    assert (
        f"{env.data_dir / 'raw_orders.csv'}, line 3: column 3 (order_date) holds '2018-13-45', "
        f"which is not {EXPECTED['DATE']}." in message
    )
    assert "Nothing was published: raw_orders keeps its previous contents" in message
    assert spark_run.published() == before
    assert materializations_recorded(env) == []


def test_a_failing_check_on_spark_publishes_nothing(spark_run, tmp_path):
    before = spark_run.published()
    sample = (spark_run.env.data_dir / "raw_orders.csv").read_text(encoding="utf-8")
    lost = sample.replace(",completed\n", ",lost\n", 1)
    assert lost != sample
    result, env = raw_run_on_spark(spark_run, tmp_path, lost)
    assert not result.success
    (check,) = [
        evaluation
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == "status_is_accepted"
    ]
    assert not check.passed
    assert "status 'lost' (1 row)" in check.description
    assert spark_run.published() == before
    assert materializations_recorded(env) == []


def test_partial_runs_after_a_file_spark_refused_read_the_published_tables(spark_run, tmp_path):
    # The refused file's load must leave the build database as the last good run left it: the
    # marts alone rebuild from the published raw tables, and a raw table loaded alone is checked
    # against the published raw_orders, with no "has never been loaded" and no missing table.
    before = spark_run.published()
    refused, _ = raw_run_on_spark(
        spark_run, tmp_path, "id,user_id,order_date,status\n1,1,2018-01-01,placed\n2,3,2018-13-45,placed\n"
    )
    assert not refused.success

    marts = spark_run.rerun([AssetKey(name) for name in ("stg_orders", "orders", "customers")])
    customers = materialize_raw(
        spark_run.env, ["raw_customers"], duckdb=spark_run.warehouse, raise_on_error=False
    )

    for result in (marts, customers):
        assert result.success, "\n".join(failure_messages(result))
        described = " ".join(
            evaluation.description or "" for evaluation in result.get_asset_check_evaluations()
        )
        assert "never been loaded" not in described
    assert spark_run.published() == before


@pytest.mark.parametrize(
    ("row", "where"),
    [
        (
            "2,3,2018-1-25,placed",
            f"line 3: column 3 (order_date) holds '2018-1-25', which is not {EXPECTED['DATE']}.",
        ),
        (
            "2, 3,2018-01-25,placed",
            f"line 3: column 2 (user_id) holds ' 3', which is not {EXPECTED['INTEGER']}.",
        ),
    ],
    ids=["unpadded_month", "leading_space"],
)
def test_spark_refuses_what_duckdb_refuses_with_the_same_message(spark_run, tmp_path, row, where):
    # DuckDB's own reader takes both forms; the input contract refuses them on both engines.
    before = spark_run.published()
    result, env = raw_run_on_spark(
        spark_run, tmp_path, f"id,user_id,order_date,status\n1,1,2018-01-01,placed\n{row}\n"
    )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert f"{env.data_dir / 'raw_orders.csv'}, {where}" in str(failure.step_failure_data.error.cause.message)
    assert spark_run.published() == before
