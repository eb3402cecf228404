"""Write-audit-publish end to end: a run that fails a check or a dbt test publishes nothing.

Each test starts from a good run of Materialize all, breaks one thing, runs again, and compares
what users read (every raw table, staging view and mart in ``main``, and the chart file's bytes)
before and after. It also checks that Dagster's catalog agrees with the warehouse: the latest
materialization of every table asset reports the published table's row count.
"""

import shutil
import signal

import pytest
from dagster import AssetKey, DagsterEventType, Definitions

from dagster_project.settings import DBT_PROJECT_DIR
from tests.helpers import (
    PROJECT_ASSETS,
    TABLE_ASSETS,
    ProjectTemplate,
    assert_catalog_matches_warehouse,
    assert_nothing_pending,
    assert_published_consistent,
    make_project_env,
    replace_file,
)
from tests.input_contract_cases import CASES
from tests.paused_marts import with_dbt_in
from tests.processes import WAIT_TIMEOUT, dbt_processes, start_materialize, wait_for

VIEW_ASSETS = ("stg_customers", "stg_orders", "stg_payments")
RAW_ASSETS = ("raw_customers", "raw_orders", "raw_payments")
ORDERS_HEADER = "id,user_id,order_date,status\n"


def published(env) -> dict[str, object]:
    """Everything a user reads: the contents of each published relation, and the chart's bytes."""
    return {**env.published_tables(), "chart": (env.chart_dir / "order_count_chart.html").read_bytes()}


def latest_runs(instance) -> dict[str, str]:
    return {
        name: instance.get_latest_materialization_event(AssetKey(name)).run_id
        for name in (*TABLE_ASSETS, *VIEW_ASSETS, "order_count_chart")
    }


@pytest.fixture(scope="module")
def good_template(tmp_path_factory) -> ProjectTemplate:
    """One successful Materialize all, run once; each test gets its own copy of the result."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_project_env(tmp_path_factory.mktemp("good") / "project", monkeypatch)
        with env.instance() as instance:
            assert env.run_job(instance).success
    return ProjectTemplate.set_aside(env)


@pytest.fixture
def good(good_template: ProjectTemplate, monkeypatch):
    """A project after one successful Materialize all: (env, instance, what users read), in a
    copy of its own, so no test sees what another one did."""
    env = good_template.fresh_copy(monkeypatch)
    with env.instance() as instance:
        yield env, instance, published(env)


def failure_message(result) -> str:
    (event,) = result.get_step_failure_events()
    error = event.step_failure_data.error
    return (error.cause or error).message


def assert_nothing_published(good, result) -> None:
    env, instance, before = good
    assert not result.success
    assert published(env) == before, "a failed run changed what users read"
    assert_catalog_matches_warehouse(env, instance)
    started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    assert "order_count_chart" not in started


def test_an_unknown_order_status_fails_its_raw_check_and_publishes_nothing(good):
    env, instance, _ = good
    first_good = latest_runs(instance)
    sample = (env.data_dir / "raw_orders.csv").read_text(encoding="utf-8")
    replace_file(env.data_dir / "raw_orders.csv", sample.replace(",placed\n", ",lost\n", 1))

    result = env.run_job(instance)

    assert_nothing_published(good, result)
    message = failure_message(result)
    assert "A blocking check on the raw data failed, so nothing was published" in message
    assert "- raw_orders: status_is_accepted. 1 row(s) of raw_orders have a status outside" in message
    (failed,) = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert (failed.asset_key, failed.check_name) == (AssetKey("raw_orders"), "status_is_accepted")
    assert failed.metadata["failing_rows"].value == 1
    # The raw step recorded no materialization: the catalog still shows the good run everywhere.
    assert latest_runs(instance) == first_good


def test_a_failing_dbt_test_on_staging_publishes_nothing_not_even_the_raw_tables(good):
    env, instance, _ = good
    # A new order with no date, and its payment: both files grow by a row, parse, and pass every
    # raw check; only stg_orders' not_null test on order_date catches it.
    orders, payments = env.data_dir / "raw_orders.csv", env.data_dir / "raw_payments.csv"
    replace_file(orders, orders.read_text(encoding="utf-8") + "100,1,,placed\n")
    replace_file(payments, payments.read_text(encoding="utf-8") + "114,100,coupon,500\n")

    result = env.run_job(instance)

    assert_nothing_published(good, result)
    assert result.get_failed_step_keys() == {"jaffle_shop_dbt_assets"}
    message = failure_message(result)
    assert "A dbt test failed, so nothing was published" in message
    assert "- stg_orders: not_null_stg_orders_order_date." in message
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [
        ("stg_orders", "not_null_stg_orders_order_date")
    ]
    assert failed[0].metadata["dagster_dbt/failed_row_count"].value == 1
    # The raw step had recorded raw_orders; the catalog now restates the published data.
    raw_orders = instance.get_latest_materialization_event(AssetKey("raw_orders"))
    assert raw_orders.run_id == result.run_id
    assert raw_orders.asset_materialization.description.startswith(
        f"Unchanged: run {result.run_id[:8]} failed"
    )


def test_a_missing_payment_is_caught_even_when_raw_orders_is_not_selected(good):
    # Materialize selected on raw_payments and everything below it: raw_orders is not reloaded,
    # yet its every_order_has_a_payment check reads the new raw_payments, so it runs and blocks.
    env, instance, _ = good
    sample = (env.data_dir / "raw_payments.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    without_order_99 = [line for line in sample if line.split(",")[1] != "99"]
    assert len(without_order_99) == len(sample) - 1
    replace_file(env.data_dir / "raw_payments.csv", "".join(without_order_99))
    selection = [
        AssetKey(name) for name in ("raw_payments", *VIEW_ASSETS, "customers", "orders", "order_count_chart")
    ]

    result = env.run_job(instance, asset_selection=selection)

    assert_nothing_published(good, result)
    message = failure_message(result)
    assert "- raw_orders: every_order_has_a_payment. 1 row(s) of raw_orders have no payment" in message


def test_a_good_run_after_a_failed_one_publishes_everything(good):
    env, instance, before = good
    path = env.data_dir / "raw_orders.csv"
    sample = path.read_text(encoding="utf-8")
    replace_file(path, sample.replace(",placed\n", ",lost\n", 1))
    assert not env.run_job(instance).success
    replace_file(path, sample.replace(",placed\n", ",shipped\n", 1))

    assert env.run_job(instance).success

    after = published(env)
    assert after["raw_orders"] != before["raw_orders"]
    assert (
        env.query("select count(*) from main.stg_orders where status = 'shipped'")[0][0]
        == (env.query("select count(*) from main.raw_orders where status = 'shipped'")[0][0])
    )
    assert after["chart"] != before["chart"]
    assert_catalog_matches_warehouse(env, instance)


def test_materialize_selected_on_customers_builds_on_published_data_only(good):
    # A run that failed its raw checks left nothing behind in the build schema, so a later run
    # of the marts alone rebuilds them from the published raw tables, not from the bad file.
    env, instance, before = good
    header, first, *rest = (env.data_dir / "raw_payments.csv").read_text(encoding="utf-8").splitlines()
    negative = first.rsplit(",", 1)[0] + ",-1000"
    replace_file(env.data_dir / "raw_payments.csv", "\n".join([header, negative, *rest]) + "\n")
    assert not env.run_job(instance).success

    result = env.run_job(instance, asset_selection=[AssetKey("customers"), AssetKey("orders")])

    assert result.success
    assert published(env) == before
    assert_catalog_matches_warehouse(env, instance)


def test_a_run_killed_during_dbt_publishes_nothing_and_the_next_run_repairs_build_and_catalog(good):
    env, instance, before = good
    # A valid new order and its payment: the raw tables would grow by one row each.
    orders, payments = env.data_dir / "raw_orders.csv", env.data_dir / "raw_payments.csv"
    replace_file(orders, orders.read_text(encoding="utf-8") + "100,1,2018-04-10,placed\n")
    replace_file(payments, payments.read_text(encoding="utf-8") + "114,100,coupon,500\n")
    run = start_materialize(env, env.root / "killed.log")
    try:
        (dbt,) = wait_for(lambda: dbt_processes(run.pid), "dbt to start")
        run.send_signal(signal.SIGKILL)
        dbt.kill()
        run.wait(timeout=WAIT_TIMEOUT)
    finally:
        run.kill()

    assert published(env) == before
    # The dead run had recorded raw materializations (100 orders) that were never published.
    killed = instance.get_latest_materialization_event(AssetKey("raw_orders"))
    assert killed.asset_materialization.metadata["dagster/row_count"].value == 100

    result = env.run_job(instance, asset_selection=[AssetKey("customers")])

    assert result.success
    assert published(env) == before
    assert_catalog_matches_warehouse(env, instance)
    log = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("ended without publishing raw_customers, raw_orders, raw_payments" in m for m in log)
    # The dead run's versions are gone once the instance says it has ended.
    killed_run = killed.run_id.replace("-", "")
    assert not env.query(
        f"select table_name from duckdb_tables() where schema_name = 'jaffle_build' and table_name like '%{killed_run}'"
    )


def test_materialize_selected_on_a_changed_raw_asset_alone_publishes_nothing_and_says_what_to_select(good):
    # The models that read raw_orders are published from the old file: publishing the new one
    # alone would leave them disagreeing with it.
    env, instance, before = good
    path = env.data_dir / "raw_orders.csv"
    replace_file(path, path.read_text(encoding="utf-8").replace(",placed\n", ",shipped\n", 1))

    result = env.run_job(instance, asset_selection=[AssetKey("raw_orders")])

    assert not result.success
    assert published(env) == before
    assert_catalog_matches_warehouse(env, instance)
    message = failure_message(result)
    assert "raw_orders changes, and customers, orders, stg_orders read it" in message
    assert "Select customers, orders, stg_orders too (or Materialize all)" in message


@pytest.mark.parametrize("name", PROJECT_ASSETS)
def test_materialize_selected_on_each_single_asset_keeps_what_users_read_consistent(good, name):
    # On the files last published. The UI launches the same selection into a run worker of its
    # own, where the steps run in process as here (test_selections_ui.py launches refused ones).
    env, instance, before = good
    result = env.run_job(instance, asset_selection=[AssetKey(name)])
    assert result.success, failure_message(result)
    # Every table and view users read is as it was, and so is the chart unless it was selected
    # (a new rendering has new element ids); the marts agree with each other and with the raw
    # tables, and the catalog shows this run's materialization.
    after = published(env)
    if name == "order_count_chart":
        assert "100 customers" in after.pop("chart").decode()
        before = {relation: rows for relation, rows in before.items() if relation != "chart"}
    assert after == before, f"{name} alone changed what users read"
    assert_published_consistent(env)
    assert_nothing_pending(env)
    assert_catalog_matches_warehouse(env, instance)
    assert instance.get_latest_materialization_event(AssetKey(name)).run_id == result.run_id


def test_a_raw_table_and_a_model_reading_it_through_an_unselected_one_are_refused_before_anything_runs(good):
    env, instance, before = good
    path = env.data_dir / "raw_customers.csv"
    replace_file(path, path.read_text(encoding="utf-8") + "101,Ann,B.\n")
    selection = [AssetKey(name) for name in ("raw_customers", "customers", "order_count_chart")]

    result = env.run_job(instance, asset_selection=selection)

    assert not result.success
    assert published(env) == before
    assert_catalog_matches_warehouse(env, instance)
    assert_nothing_pending(env)
    # Whichever step Dagster ran first refused: nothing in the subset orders them.
    assert result.get_failed_step_keys() == {"raw_tables", "jaffle_shop_dbt_assets"}
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        message = (error.cause or error).message
        assert "raw_customers is loaded, and models that read it are rebuilt, but stg_customers" in message
        assert "Select stg_customers too (or Materialize all)" in message


def test_new_payments_without_every_mart_that_reads_them_publish_nothing(good):
    # Valid new payments, loaded with stg_payments and customers but not orders: orders would
    # keep the old payments while customers had the new ones.
    env, instance, before = good
    path = env.data_dir / "raw_payments.csv"
    replace_file(path, path.read_text(encoding="utf-8") + "114,1,coupon,500\n")
    selection = [
        AssetKey(name) for name in ("raw_payments", "stg_payments", "customers", "order_count_chart")
    ]

    result = env.run_job(instance, asset_selection=selection)

    assert not result.success
    assert published(env) == before
    assert_catalog_matches_warehouse(env, instance)
    assert_nothing_pending(env)
    assert "raw_payments changes, and orders reads it" in failure_message(result)


def test_a_customer_missing_from_raw_customers_alone_is_caught_by_the_orders_check(good):
    env, instance, before = good
    path = env.data_dir / "raw_customers.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    replace_file(path, "".join(line for line in lines if not line.startswith("1,")))

    result = env.run_job(instance, asset_selection=[AssetKey("raw_customers")])

    assert not result.success
    assert published(env) == before
    assert_catalog_matches_warehouse(env, instance)
    assert "- raw_orders: user_id_exists_in_raw_customers." in failure_message(result)


# One file for each way the contract refuses one: a value of the wrong form (a number, a date),
# a header without a required column, and a file DuckDB's reader stops on (fields, encoding, line
# endings, an empty row). test_input_contract.py gives every refused file its message at the
# loader; what a run makes of a refusal is the same whatever the file.
END_TO_END = (
    "letters_in_id",
    "no_such_day",
    "missing_column",
    "too_few_fields",
    "not_utf8",
    "cut_last_line",
    "crlf_appended",
    "empty_row",
)
REFUSED = [next(case for case in CASES if case[0] == name and case[3] is not None) for name in END_TO_END]


@pytest.mark.parametrize("case", REFUSED, ids=[case[0] for case in REFUSED])
def test_a_file_outside_the_input_contract_publishes_nothing_and_names_file_and_line(good, case):
    env, instance, _ = good
    first_good = latest_runs(instance)
    _, table, data, expected = case
    path = env.data_dir / f"{table}.csv"
    replace_file(path, data)

    result = env.run_job(instance)

    assert_nothing_published(good, result)
    assert latest_runs(instance) == first_good
    assert f"{path}, {expected}" in failure_message(result)


# A new project's first run: nothing was published before it, so nothing stands in the way of
# publishing too early, and no earlier materialization can stand in for the ones it recorded.


def assert_first_run_left_nothing(env, instance, result) -> None:
    assert not result.success
    assert env.published_tables() == {}, "a failed first run published tables"
    assert not (env.chart_dir / "order_count_chart.html").exists()
    recorded = [name for name in PROJECT_ASSETS if instance.get_latest_materialization_event(AssetKey(name))]
    assert recorded == [], "the catalog shows materializations of tables that do not exist"


def test_a_first_load_of_the_raw_tables_alone_that_fails_a_check_publishes_nothing(project_env, instance):
    path = project_env.data_dir / "raw_orders.csv"
    replace_file(path, path.read_text(encoding="utf-8").replace(",placed\n", ",lost\n", 1))

    result = project_env.run_job(instance, asset_selection=[AssetKey(name) for name in RAW_ASSETS])

    assert_first_run_left_nothing(project_env, instance, result)
    assert "- raw_orders: status_is_accepted. 1 row(s) of raw_orders" in failure_message(result)


def with_a_mart_dbt_cannot_build(env) -> Definitions:
    """The project's definitions, with dbt run in a copy whose ``orders`` fails as it is built:
    a dbt error (as a broken model or a contract would give), not a failed dbt test."""
    copy = env.root / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    orders = copy / "models" / "marts" / "orders.sql"
    orders.write_text(f"{{{{ config(pre_hook=\"select error('{BROKEN}')\") }}}}\n" + orders.read_text())
    return with_dbt_in(env.defs(), copy)


BROKEN = "orders broken by the test"


def test_a_first_run_where_dbt_fails_publishes_nothing_and_the_catalog_shows_nothing(project_env, instance):
    job = with_a_mart_dbt_cannot_build(project_env).resolve_job_def("jaffle_shop_job")

    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert_first_run_left_nothing(project_env, instance, result)
    message = failure_message(result)
    assert "dbt build failed, so nothing was published" in message
    assert BROKEN in message
