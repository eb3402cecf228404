"""Two Materialize-all runs launched together on one instance and one DuckDB file both succeed."""

from dagster import DagsterRunStatus

from tests.processes import RUN_TIMEOUT, start_materialize


def test_two_runs_launched_together_both_succeed(project_env, instance):
    logs = [project_env.root / f"run_{n}.log" for n in (1, 2)]
    runs = [start_materialize(project_env, log) for log in logs]
    try:
        codes = [run.wait(timeout=RUN_TIMEOUT) for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)

    statuses = [record.dagster_run.status for record in instance.get_run_records()]
    assert statuses == [DagsterRunStatus.SUCCESS] * 2
    assert project_env.query("select count(*), sum(number_of_orders) from customers") == [(100, 99)]
    assert (project_env.chart_dir / "order_count_chart.html").is_file()
