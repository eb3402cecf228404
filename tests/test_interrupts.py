"""A run killed mid-way loses nothing that was committed, and the next run succeeds."""

import signal

import duckdb
import psutil
from dagster import DagsterInstance, DagsterRunStatus

from dagster_project.settings import SAMPLE_DATA_DIR
from tests.conftest import load_sample_tables
from tests.processes import WAIT_TIMEOUT, materialize, start_materialize, wait_for

SAMPLE_COUNTS = [("raw_customers", 100), ("raw_orders", 99), ("raw_payments", 113)]
# Large enough that loading takes seconds, so the kill lands inside the load.
BIG_CUSTOMERS = 3_000_000


def load_sample(env) -> None:
    with env.warehouse().get_connection() as conn:
        load_sample_tables(conn)


def raw_counts(env) -> list[tuple[str, int]]:
    return [(table, env.query(f"select count(*) from {table}")[0][0]) for table, _ in SAMPLE_COUNTS]


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
    assert "raw_customers - STEP_SUCCESS" not in log.read_text(), "the kill came too late"

    assert raw_counts(project_env) == SAMPLE_COUNTS

    customers_csv.unlink()
    customers_csv.write_bytes((SAMPLE_DATA_DIR / "raw_customers.csv").read_bytes())
    next_log = project_env.root / "next.log"
    assert materialize(project_env, next_log) == 0, next_log.read_text()[-3000:]
    assert raw_counts(project_env) == SAMPLE_COUNTS
    with DagsterInstance.from_config(str(project_env.dagster_home)) as instance:
        killed, succeeded = sorted(instance.get_run_records(), key=lambda record: record.create_timestamp)
        assert instance.run_launcher.check_run_worker_health(killed.dagster_run).status.value == "FAILED"
        assert succeeded.dagster_run.status == DagsterRunStatus.SUCCESS


def dbt_processes(run: psutil.Process) -> list[psutil.Process]:
    return [
        child
        for child in run.children(recursive=True)
        if any(part.endswith("dbt") for part in child.cmdline()[:2])
    ]


def test_terminating_a_run_while_dbt_runs_stops_dbt_and_frees_the_pool(project_env):
    load_sample(project_env)
    log = project_env.root / "terminated.log"
    run = start_materialize(project_env, log)
    try:
        (dbt,) = wait_for(lambda: dbt_processes(psutil.Process(run.pid)), "dbt to start")
        # SIGTERM is what Terminate in the UI and `kill` send.
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=WAIT_TIMEOUT) == 1
    finally:
        run.kill()
    _gone, alive = psutil.wait_procs([dbt], timeout=WAIT_TIMEOUT)
    assert alive == [], f"dbt (PID {dbt.pid}) outlived its run"
    assert "jaffle_shop_dbt_assets failed" in log.read_text()

    assert raw_counts(project_env) == SAMPLE_COUNTS
    with DagsterInstance.from_config(str(project_env.dagster_home)) as instance:
        (record,) = instance.get_run_records()
        assert record.dagster_run.status == DagsterRunStatus.FAILURE
        pool = instance.event_log_storage.get_concurrency_info("duckdb")
        assert pool.claimed_slots == [] and pool.pending_steps == []
