"""Runs at once on PostgreSQL storage, under each concurrency setting a user may write in the
instance's dagster.yaml: two headless runs and one queued run, started together, all succeed,
one after the other, and `main` reads the last one's tables (tests/concurrency.py).

The services are `make serve`'s (PostgreSQL, code server, daemon, webserver), started anew for
each setting: the daemon reads the pools when it starts. SQLite storage: test_concurrency.py.
"""

import pytest
from dagster import DagsterInstance

from dagster_project.settings import REPO_ROOT
from tests.browser import DagsterDev, wait_for
from tests.concurrency import assert_ran_in_turn_and_the_last_published, run_three_together
from tests.helpers import INSTANCE_POOLS, make_project_env
from tests.serving import serving

ARTIFACTS = REPO_ROOT / "test-artifacts" / "concurrency-postgres"
# A bound on a busy machine, not an expectation: the code location loads in 5 to 15 s here.
START_TIMEOUT = 180


@pytest.mark.parametrize("pools", list(INSTANCE_POOLS.values()), ids=list(INSTANCE_POOLS))
def test_two_headless_runs_and_a_queued_one_all_succeed_in_turn(tmp_path, monkeypatch, pools):
    env = make_project_env(tmp_path)
    with serving(env, ARTIFACTS, instance_settings=pools) as deployment:
        ui = DagsterDev(deployment.processes["webserver"], deployment.url, deployment.log("webserver"))
        wait_for("the code location to load", ui.code_location_loaded, START_TIMEOUT)
        # `make materialize` against the same instance: its home and its PostgreSQL.
        instance_variables = {"DAGSTER_HOME": str(deployment.dagster_home), **deployment.postgres.variables}
        run_three_together(ui, env, {**env.variables, **instance_variables})
        for name, value in instance_variables.items():
            monkeypatch.setenv(name, value)
        with DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
            assert_ran_in_turn_and_the_last_published(ui, env, instance)
