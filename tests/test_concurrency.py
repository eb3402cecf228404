"""Two Materialize-all runs launched together on one instance and one DuckDB file both succeed.

They take turns: one run's steps all finish before the other's first step starts, because a run
holds the warehouse from its first write to its end (write-audit-publish spans its steps).
"""

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from dagster_project.warehouse import LEASE_TAKEN
from tests.helpers import INSTANCE_POOLS, add_instance_settings, dbt_reparsed
from tests.processes import RUN_TIMEOUT, start_materialize

STEP_EVENTS = (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)


def warehouse_span(instance, run_id: str) -> tuple[float, float]:
    """From the run's event log: when it took the warehouse, and when its last step ended.

    Both runs' first steps start at once; the second then waits inside its step until the
    first run ends, so the span starts when the run says it holds the warehouse.
    """
    logs = instance.all_logs(run_id)
    (taken,) = [entry.timestamp for entry in logs if entry.user_message.startswith(LEASE_TAKEN)]
    ended = [
        record.event_log_entry.timestamp
        for event_type in STEP_EVENTS
        for record in instance.get_records_for_run(run_id, of_type=event_type).records
    ]
    return taken, max(ended)


# Headless runs go past the run queue: run granularity applies to queued runs only (test_dead_runs.py).
HEADLESS_POOLS = {name: INSTANCE_POOLS[name] for name in ("no pools", "op granularity, limit 1")}


@pytest.mark.parametrize("pools", list(HEADLESS_POOLS.values()), ids=list(HEADLESS_POOLS))
def test_two_runs_launched_together_both_succeed_one_after_the_other(project_env, pools):
    add_instance_settings(project_env.dagster_home, pools)
    # The instance's storage is created once, before the runs: two processes creating a new
    # SQLite storage at the same moment race in its migrations (alembic: "more than one head").
    with project_env.instance():
        pass
    logs = [project_env.root / f"run_{n}.log" for n in (1, 2)]
    runs = [start_materialize(project_env, log) for log in logs]
    try:
        # One run waits for the other to end: together they may take two runs' time.
        codes = [run.wait(timeout=2 * RUN_TIMEOUT) for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)

    with project_env.instance() as instance:
        check_runs(project_env, instance)


def check_runs(project_env, instance) -> None:
    records = instance.get_run_records()
    assert [record.dagster_run.status for record in records] == [DagsterRunStatus.SUCCESS] * 2
    first, second = sorted(warehouse_span(instance, record.dagster_run.run_id) for record in records)
    assert first[1] <= second[0], f"the runs used the warehouse at the same time: {first} and {second}"
    assert project_env.query("select count(*), sum(number_of_orders) from customers") == [(100, 99)]
    # The first run parsed the dbt project; the second reused that parse (2 to 3 s).
    assert dbt_reparsed(project_env) == [True, False]
    assert (project_env.chart_dir / "order_count_chart.html").is_file()
