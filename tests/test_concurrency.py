"""Runs at once on SQLite storage, under each concurrency setting a user may write in the
instance's dagster.yaml: two headless runs and one queued run, started together, all succeed,
one after the other, and `main` reads the last one's tables (tests/concurrency.py).

The UI is `dg dev`, as `make run` starts it: its daemon takes the queued run off the queue.
PostgreSQL storage: test_concurrency_postgres.py.
"""

import pytest

from dagster_project.settings import REPO_ROOT
from tests.browser import dagster_dev
from tests.concurrency import assert_ran_in_turn_and_the_last_published, run_three_together
from tests.helpers import INSTANCE_POOLS, add_instance_settings, make_project_env

ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.mark.parametrize("pools", list(INSTANCE_POOLS.values()), ids=list(INSTANCE_POOLS))
def test_two_headless_runs_and_a_queued_one_all_succeed_in_turn(tmp_path, pools):
    env = make_project_env(tmp_path)
    add_instance_settings(env.dagster_home, pools)
    # The instance's storage is created once, before the runs: two processes creating a new
    # SQLite storage at the same moment race in its migrations (alembic: "more than one head").
    with env.instance():
        pass
    ARTIFACTS.mkdir(exist_ok=True)
    with dagster_dev(env.variables, ARTIFACTS / f"dagster-dev-concurrency-{tmp_path.name}.log") as ui:
        run_three_together(ui, env, env.variables)
        with env.instance() as instance:
            assert_ran_in_turn_and_the_last_published(ui, env, instance)
