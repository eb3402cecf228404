"""Three runs at once on one instance: two headless and one queued, as the instance-settings
matrix runs them (`test_concurrency.py` on SQLite, `test_concurrency_postgres.py` on PostgreSQL).

Two `make materialize` runs start together and, at the same moment, one Materialize all is
launched through the webserver's GraphQL, as the UI's button launches it, into the instance's
run queue. All three must end in success, one after the other, with the published tables those
of the run that ended last.
"""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass

from dagster import DagsterInstance

from dagster_project.defs.report import CHART_FILE_NAME
from tests.browser import DagsterDev, run_statuses, wait_for_run_to_end
from tests.dagster_dev import launch_job, warehouse_span
from tests.helpers import (
    ProjectEnv,
    assert_catalog_matches_warehouse,
    assert_nothing_pending,
    assert_published_consistent,
    dbt_reparsed,
)
from tests.processes import RUN_TIMEOUT, start_materialize

JOB = "jaffle_shop_job"
# Three runs take turns: the last may wait for two whole runs before its own.
ALL_RUNS_TIMEOUT = 3 * RUN_TIMEOUT


@dataclass(frozen=True)
class Headless:
    """What `make materialize` reads: the project's variables and the instance's."""

    variables: dict[str, str]


def run_three_together(ui: DagsterDev, env: ProjectEnv, variables: dict[str, str]) -> None:
    """Start the three runs together and wait for each to end in success."""
    logs = [env.root / f"headless_{n}.log" for n in (1, 2)]
    headless: list[subprocess.Popen] = []
    try:
        headless = [start_materialize(Headless(variables), log) for log in logs]
        queued = launch_job(ui, JOB)
        codes = [run.wait(timeout=ALL_RUNS_TIMEOUT) for run in headless]
        status = wait_for_run_to_end(ui, queued, ALL_RUNS_TIMEOUT)
    finally:
        for run in headless:
            run.kill()
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    assert status == "SUCCESS", f"the queued run ended {status}: {ui.url}/runs/{queued}"


def assert_ran_in_turn_and_the_last_published(
    ui: DagsterDev, env: ProjectEnv, instance: DagsterInstance
) -> None:
    """The three runs used the warehouse one after the other, and what `main` reads is the
    last one's: every published version is that run's, with the sample data's values."""
    statuses = run_statuses(ui)
    assert list(statuses.values()) == ["SUCCESS"] * 3, statuses
    spans = sorted((warehouse_span(ui, run_id), run_id) for run_id in statuses)
    for (before, _), (after, _) in itertools.pairwise(spans):
        assert before[1] <= after[0], f"two runs used the warehouse at the same time: {spans}"
    last = spans[-1][1]

    published = dict(env.query("select name, run_id from jaffle_build.wap_state where published"))
    assert set(published.values()) == {last}, (
        f"not every published version is the last run's ({last}): {published}"
    )
    assert env.query("select count(*), sum(number_of_orders) from customers") == [(100, 99)]
    assert_published_consistent(env)
    assert_nothing_pending(env)
    assert_catalog_matches_warehouse(env, instance)
    # The first run parsed the dbt project; the others reused that parse (2 to 3 s each).
    assert dbt_reparsed(env) == [True, False, False]
    assert "100 customers" in (env.chart_dir / CHART_FILE_NAME).read_text(encoding="utf-8")
