"""Runs at once on PostgreSQL storage, with Dagster's pools limited to 1 at op granularity: two
headless runs and one queued run, started together, all succeed, one after the other, and `main`
reads the last one's tables (tests/concurrency.py).

The services are `make serve`'s (PostgreSQL, code server, daemon, webserver). Of the instance
settings test_concurrency.py runs on SQLite, this is the one where the storage takes part in
every run: each step of every run, headless ones included, claims the pool's slot in the
instance's storage, and this setting is the one that once deadlocked two headless runs. Without
pools the runs take turns through the run lease alone, a file beside the warehouse whatever the
storage; at run granularity only the daemon's queue reads the pool. Both are in
test_concurrency.py, and test_serve.py runs its UI runs on this storage and setting too.
"""

from dagster import DagsterInstance

from dagster_project.settings import REPO_ROOT
from tests.browser import DagsterDev, wait_for
from tests.concurrency import assert_ran_in_turn_and_the_last_published, run_three_together
from tests.helpers import INSTANCE_POOLS, make_project_env
from tests.serving import serving

ARTIFACTS = REPO_ROOT / "test-artifacts" / "concurrency-postgres"
# A bound on a busy machine, not an expectation: the code location loads in 5 to 15 s here.
START_TIMEOUT = 180


def test_two_headless_runs_and_a_queued_one_all_succeed_in_turn(tmp_path, monkeypatch):
    env = make_project_env(tmp_path)
    pools = INSTANCE_POOLS["op granularity, limit 1"]
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
