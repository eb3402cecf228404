"""JAFFLE_ENV=spark: the same pipeline on a real Spark Connect server, and the same promises.

One Spark run of Materialize all on the sample data is shared by the module (a run costs tens
of seconds); the two failure tests start from what it published and end where they started.
Spark's databases are the server's, not the test's, so the module starts from empty ones.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dagster import AssetKey, Definitions, ExecuteInProcessResult

from dagster_project.definitions import build_defs
from dagster_project.input_contract import EXPECTED
from dagster_project.settings import load_settings
from dagster_project.warehouse.spark import SparkWarehouse
from tests.helpers import PROJECT_ASSETS, ProjectEnv, make_project_env, materialize_raw

pytestmark = pytest.mark.spark

MARTS = {"customers": "customer_id", "orders": "order_id"}


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
        monkeypatch.setenv("SPARK_REMOTE", spark_connect)
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
    for mart, key in MARTS.items():
        on_spark = spark_run.query(f"select * from jaffle.{mart} order by {key}")
        on_duckdb = sample_run.env.query(f"select * from main.{mart} order by {key}")
        assert len(on_spark) == len(on_duckdb) > 0
        assert on_spark == on_duckdb, mart
    chart = spark_run.env.chart_dir / "order_count_chart.html"
    assert "100 customers" in chart.read_text(encoding="utf-8")


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


def test_a_failing_check_on_spark_publishes_nothing(spark_run, tmp_path):
    before = spark_run.published()
    sample = (spark_run.env.data_dir / "raw_orders.csv").read_text(encoding="utf-8")
    lost = sample.replace(",completed\n", ",lost\n", 1)
    assert lost != sample
    result, _ = raw_run_on_spark(spark_run, tmp_path, lost)
    assert not result.success
    (check,) = [
        evaluation
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == "status_is_accepted"
    ]
    assert not check.passed
    assert "status 'lost' (1 row)" in check.description
    assert spark_run.published() == before


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
