"""Data that parses but is wrong is caught by a blocking check, and never reaches the chart."""

from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    build_asset_check_context,
    build_asset_context,
)

from dagster_project.data_source import LocalDataSource
from dagster_project.defs.ingest import RawLoadConfig, raw_assets, raw_reference_checks
from dagster_project.warehouse import sql_string
from tests.conftest import make_project_env

RAW_ASSETS = {asset.key.to_user_string(): asset for asset in raw_assets}
REFERENCE_CHECKS = {next(iter(check.check_keys)).name: check for check in raw_reference_checks}
ORDERS_HEADER = "id,user_id,order_date,status\n"
PAYMENTS_HEADER = "id,order_id,payment_method,amount\n"


def replace_file(path: Path, text: str) -> None:
    # The sample files are copied read-only; replace rather than overwrite.
    path.unlink()
    path.write_text(text, encoding="utf-8")


def failed_check(project_env, file: str, text: str, check_name: str, failing_rows: int):
    """Load ``text`` as ``file`` through its raw asset; the named check, asserted to have failed."""
    replace_file(project_env.data_dir / file, text)
    check = load_raw(project_env, file.removesuffix(".csv"))[check_name]
    assert not check.passed
    assert check.metadata["failing_rows"].value == failing_rows
    return check


def load_raw(project_env, table: str):
    """Run one raw asset directly on the project's data folder; its check results by name."""
    with build_asset_context() as context:
        result = RAW_ASSETS[table](
            context,
            config=RawLoadConfig(),
            duckdb=project_env.warehouse(),
            data_source=LocalDataSource(directory=str(project_env.data_dir)),
        )
    return {check.check_name: check for check in result.check_results}


@pytest.mark.parametrize(
    ("rows", "failing_rows", "described"),
    [
        (
            "1,1,2018-01-01,placed\n1,2,2018-01-02,placed\n2,3,2018-01-03,placed\n",
            2,
            "2 row(s) of raw_orders have a missing or repeated id: id 1 (2 rows).",
        ),
        (
            "1,1,2018-01-01,placed\n,2,2018-01-02,placed\n",
            1,
            "1 row(s) of raw_orders have a missing or repeated id: id null (1 row).",
        ),
    ],
    ids=["duplicate_id", "null_id"],
)
def test_a_duplicate_or_null_id_fails_the_id_check(project_env, rows, failing_rows, described):
    check = failed_check(
        project_env, "raw_orders.csv", ORDERS_HEADER + rows, "id_is_unique_and_not_null", failing_rows
    )
    assert check.description == described


def test_an_unknown_order_status_fails_the_status_check(project_env):
    check = failed_check(
        project_env,
        "raw_orders.csv",
        ORDERS_HEADER + "1,1,2018-01-01,placed\n2,1,2018-01-02,lost\n3,2,2018-01-03,lost\n",
        "status_is_accepted",
        failing_rows=2,
    )
    assert "| status | rows |" in check.metadata["sample"].value
    assert "| lost | 2 |" in check.metadata["sample"].value
    assert check.description.startswith(
        "2 row(s) of raw_orders have a status outside the accepted values (placed, shipped, "
    )
    assert check.description.endswith(": status 'lost' (2 rows).")


def test_an_unknown_payment_method_fails_the_payment_method_check(project_env):
    check = failed_check(
        project_env,
        "raw_payments.csv",
        PAYMENTS_HEADER + "1,1,credit_card,100\n2,1,bitcoin,200\n",
        "payment_method_is_accepted",
        failing_rows=1,
    )
    assert check.description.endswith(": payment_method 'bitcoin' (1 row).")


def test_an_order_of_an_unknown_customer_fails_the_reference_check(project_env):
    replace_file(
        project_env.data_dir / "raw_orders.csv",
        ORDERS_HEADER + "1,1,2018-01-01,placed\n2,999,2018-01-02,placed\n",
    )
    load_raw(project_env, "raw_customers")
    load_raw(project_env, "raw_orders")
    check = REFERENCE_CHECKS["user_id_exists_in_raw_customers"](
        build_asset_check_context(), duckdb=project_env.warehouse()
    )
    assert not check.passed
    assert check.metadata["failing_rows"].value == 1
    assert check.description == (
        "1 row(s) of raw_orders have a user_id that is not an id in raw_customers: user_id 999 (1 row)."
    )


def test_every_check_on_raw_data_is_blocking(project_env):
    specs = [spec for asset in raw_assets for spec in asset.check_specs] + [
        spec for check in raw_reference_checks for spec in check.check_specs
    ]
    assert len(specs) == 7
    assert all(spec.blocking for spec in specs), [spec.name for spec in specs if not spec.blocking]


# End to end: one good run, then one failing run per kind of bad input. A failing run stops at
# the raw step or its checks, so it costs seconds: dbt never starts.


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_project_env(tmp_path_factory.mktemp("good_run"), monkeypatch)
        with env.instance() as instance:
            result = env.run_job(instance)
            assert result.success
            chart = Path(
                instance.get_latest_materialization_event(AssetKey("order_count_chart"))
                .asset_materialization.metadata["path"]
                .value
            )
            yield env, instance, result.run_id, chart, chart.read_bytes()


def run_with_file(good_run, name: str, text: str):
    """Run the whole job with one raw file replaced, then put the sample file back."""
    env, instance, *_ = good_run
    path = env.data_dir / name
    original = path.read_bytes()
    replace_file(path, text)
    try:
        return env.run_job(instance)
    finally:
        path.unlink()
        path.write_bytes(original)


def assert_nothing_downstream_ran(good_run, result, failed_step: str) -> None:
    env, instance, good_run_id, chart, chart_bytes = good_run
    assert not result.success
    assert result.get_failed_step_keys() == {failed_step}
    started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    assert not started & {"jaffle_shop_dbt_assets", "order_count_chart"}
    # Dagster abandons the steps below a failed one and says so in the run's log.
    log = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(m.startswith("Dependencies for step jaffle_shop_dbt_assets failed") for m in log)
    for asset in ("customers", "order_count_chart"):
        latest = instance.get_latest_materialization_event(AssetKey(asset))
        assert latest.run_id == good_run_id, f"{asset} was rebuilt from bad data"
    assert chart.read_bytes() == chart_bytes
    assert env.query("select count(*), sum(number_of_orders) from customers") == [(100, 99)]


def step_failure_message(result, step: str) -> str:
    (event,) = [e for e in result.get_step_failure_events() if e.step_key == step]
    error = event.step_failure_data.error
    return (error.cause or error).message


def test_a_wrong_type_in_raw_orders_fails_the_run_and_leaves_every_table_and_the_chart(good_run):
    env = good_run[0]
    bad = ORDERS_HEADER + "1,1,2018-01-01,placed\n2,1,2018-13-45,placed\n"
    result = run_with_file(good_run, "raw_orders.csv", bad)
    assert_nothing_downstream_ran(good_run, result, "raw_orders")
    assert (
        f"{env.data_dir / 'raw_orders.csv'}, line 3: column 3 (order_date) holds '2018-13-45', "
        "which is not a valid DATE." in step_failure_message(result, "raw_orders")
    )
    assert env.query("select count(*) from raw_orders") == [(99,)]


def test_a_bad_order_status_stops_the_chart(good_run):
    bad = ORDERS_HEADER + "1,1,2018-01-01,placed\n2,2,2018-01-02,lost\n"
    result = run_with_file(good_run, "raw_orders.csv", bad)
    assert_nothing_downstream_ran(good_run, result, "raw_orders")
    assert "raw_orders: status_is_accepted" in step_failure_message(result, "raw_orders")
    (failed,) = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed.check_name == "status_is_accepted"
    assert failed.metadata["failing_rows"].value == 1
    assert failed.description.endswith(": status 'lost' (1 row).")


def test_an_order_of_an_unknown_customer_stops_the_chart(good_run):
    sample = (good_run[0].data_dir / "raw_orders.csv").read_text(encoding="utf-8")
    result = run_with_file(good_run, "raw_orders.csv", sample + "100,999,2018-04-10,placed\n")
    assert_nothing_downstream_ran(good_run, result, "raw_orders_user_id_exists_in_raw_customers")
    (failed,) = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed.check_name == "user_id_exists_in_raw_customers"
    assert failed.description.endswith(": user_id 999 (1 row).")


def test_a_failing_dbt_test_stops_the_marts_and_the_chart(good_run):
    # Bad data that got into the raw table some other way than our loader, so only dbt's own
    # tests stand between it and the chart.
    env, instance, good_run_id, chart, chart_bytes = good_run
    dbt_and_chart = [
        AssetKey(name) for name in ("stg_customers", "stg_orders", "stg_payments", "customers", "orders")
    ] + [AssetKey("order_count_chart")]
    with env.warehouse().get_connection() as conn:
        (original,) = conn.execute("select status from raw_orders where id = 2").fetchone()
        conn.execute("update raw_orders set status = 'lost' where id = 2")
    try:
        result = env.run_job(instance, asset_selection=dbt_and_chart)
    finally:
        with env.warehouse().get_connection() as conn:
            conn.execute(f"update raw_orders set status = {sql_string(original)} where id = 2")

    assert not result.success
    assert result.get_failed_step_keys() == {"jaffle_shop_dbt_assets"}
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [
        (
            "stg_orders",
            "accepted_values_stg_orders_status__placed__shipped__completed__return_pending__returned",
        )
    ]
    started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    assert "order_count_chart" not in started
    for asset in ("customers", "order_count_chart"):
        latest = instance.get_latest_materialization_event(AssetKey(asset))
        assert latest.run_id == good_run_id, f"{asset} was rebuilt from bad data"
    assert chart.read_bytes() == chart_bytes
