"""A run killed mid-way loses nothing that was committed, and the next run succeeds."""

import re
import signal

import duckdb
import psutil
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from dagster_project.settings import SAMPLE_DATA_DIR
from tests.helpers import load_sample_tables, replace_file
from tests.processes import WAIT_TIMEOUT, dbt_processes, materialize, start_materialize, wait_for

RAW = ("raw_customers", "raw_orders", "raw_payments")
MARTS = ("customers", "orders")
# Large enough that loading takes seconds, so the kill lands inside the load.
BIG_CUSTOMERS = 3_000_000


def load_sample(env) -> None:
    with env.warehouse().get_connection() as conn:
        load_sample_tables(conn)


def contents(env, tables: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Every row of each table, in a fixed order."""
    return {table: env.query(f"select * from {table} order by all") for table in tables}


def write_big_customers(path) -> None:
    path.unlink()
    with duckdb.connect() as conn:
        conn.execute(
            "copy (select i as id, 'Ann' as first_name, 'B.' as last_name "
            f"from range(1, {BIG_CUSTOMERS + 1}) as t(i)) to '{path}' (header)"
        )


def test_a_run_killed_during_a_load_keeps_the_tables_and_the_next_run_succeeds(project_env):
    load_sample(project_env)
    customers_csv = project_env.data_dir / "raw_customers.csv"
    write_big_customers(customers_csv)
    log = project_env.root / "killed.log"

    sample = contents(project_env, RAW)
    database = project_env.database
    size_before = database.stat().st_size
    run = start_materialize(project_env, log)
    try:
        # DuckDB writes a large load's blocks to the file before it commits them.
        wait_for(lambda: database.stat().st_size > size_before, "the load to start writing")
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=WAIT_TIMEOUT)
    finally:
        run.kill()
    assert "raw_tables - STEP_SUCCESS" not in log.read_text(), "the kill came too late"

    assert contents(project_env, RAW) == sample

    replace_file(customers_csv, (SAMPLE_DATA_DIR / "raw_customers.csv").read_bytes())
    next_log = project_env.root / "next.log"
    assert materialize(project_env, next_log) == 0, next_log.read_text()[-3000:]
    # The line the kill is timed against does appear in a run's log.
    assert "raw_tables - STEP_SUCCESS" in next_log.read_text()
    assert contents(project_env, RAW) == sample
    with DagsterInstance.from_config(str(project_env.dagster_home)) as instance:
        killed, succeeded = sorted(instance.get_run_records(), key=lambda record: record.create_timestamp)
        # With no daemon running, nothing has marked the killed run failed yet; run monitoring
        # will, through the launcher's health check (tests/test_dead_runs.py).
        assert instance.run_launcher.check_run_worker_health(killed.dagster_run).status.value == "FAILED"
        assert succeeded.dagster_run.status == DagsterRunStatus.SUCCESS


def dbt_model_started(log, model: str) -> bool:
    return re.search(rf"START sql table model \S+\.{model} ", log.read_text()) is not None


def test_terminating_a_run_while_dbt_runs_stops_dbt_before_the_marts_and_publishes_nothing(project_env):
    first_log = project_env.root / "first.log"
    assert materialize(project_env, first_log) == 0, first_log.read_text()[-3000:]
    marts_before = contents(project_env, MARTS)
    # A new amount for payment 1: a dbt that got to the marts would change both of them.
    payments = project_env.data_dir / "raw_payments.csv"
    header, first, *rest = payments.read_text().splitlines()
    (old_amount,) = project_env.query("select amount from raw_payments where id = 1")[0]
    replace_file(payments, "\n".join([header, first.rsplit(",", 1)[0] + ",99900", *rest]) + "\n")

    log = project_env.root / "terminated.log"
    # dbt holds at the start of each mart, far longer than WAIT_TIMEOUT, so a dbt that did not
    # stop on the signal fails the test.
    paused = ("-m", "tests.paused_marts", str(project_env.root / "paused_dbt_project"))
    run = start_materialize(project_env, log, paused)
    try:
        wait_for(lambda: dbt_model_started(log, "customers"), "dbt to start building customers")
        (dbt,) = dbt_processes(run.pid)
        # SIGTERM is what Terminate in the UI and `kill` send.
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=WAIT_TIMEOUT) == 1
    finally:
        run.kill()
    _gone, alive = psutil.wait_procs([dbt], timeout=WAIT_TIMEOUT)
    for process in alive:
        process.kill()
    assert alive == [], f"dbt (PID {dbt.pid}) outlived its run"
    output = log.read_text()
    assert "jaffle_shop_dbt_assets failed" in output
    assert not re.search(r"OK created sql table model \S+\.(customers|orders) ", output), output[-3000:]

    # Nothing was published, not even the raw table that had loaded the new file; the run left
    # no version of its own, and dbt's workspace reads the published data again.
    assert project_env.query("select amount from raw_payments where id = 1") == [(old_amount,)]
    assert project_env.query("select amount from jaffle_build.raw_payments where id = 1") == [
        (old_amount,)
    ], output[-5000:]
    with DagsterInstance.from_config(str(project_env.dagster_home)) as instance:
        terminated_run = instance.get_run_records(limit=1)[0].dagster_run.run_id.replace("-", "")
    assert not project_env.query(
        "select table_name from duckdb_tables() where schema_name = 'jaffle_build' "
        f"and table_name like '%{terminated_run}'"
    )
    assert contents(project_env, MARTS) == marts_before
    with DagsterInstance.from_config(str(project_env.dagster_home)) as instance:
        first, terminated = sorted(instance.get_run_records(), key=lambda record: record.create_timestamp)
        assert first.dagster_run.status == DagsterRunStatus.SUCCESS
        assert terminated.dagster_run.status == DagsterRunStatus.FAILURE
        latest = instance.get_latest_materialization_event(AssetKey("customers"))
        assert latest.run_id == first.dagster_run.run_id
