"""Dead runs recover by themselves under `make run`: no one terminates or frees anything.

A run whose process is killed outright (SIGKILL, out of memory) is marked failed, its run
lease is gone with its process, and the next run succeeds within 2 minutes.
One UI server, started as `make run` starts it, serves the module: starting it costs the most.
"""

import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest

from dagster_project.settings import REPO_ROOT
from tests.browser import (
    DagsterDev,
    dagster_dev,
    run_statuses,
    wait_for,
    wait_for_new_run,
    wait_for_run_to_end,
)
from tests.dagster_dev import launch_job, run_messages, run_status, run_workers, warning_lines
from tests.helpers import (
    INSTANCE_POOLS,
    ProjectEnv,
    add_instance_settings,
    assert_catalog_matches_warehouse,
    make_project_env,
    replace_file,
)
from tests.processes import dbt_processes, start_materialize

ARTIFACTS = REPO_ROOT / "test-artifacts"
JOB = "jaffle_shop_job"
# The promise: after a run's process dies, the next run succeeds within 2 minutes.
RECOVERY_TIMEOUT = 120
# Bounds on a busy machine, not expectations: a run starts in 5 to 10 s here.
START_TIMEOUT = 120
# What the run's log says when its process died: Dagster's code server notices the end of a
# worker it spawned; run monitoring, with the project's launcher, notices any other run's.
WORKER_DIED = re.compile(
    r"was terminated by signal 9 \(SIGKILL\)|The run's process \(PID \d+\) (is gone|has exited)"
)

# What a run's log says when it had to wait for the warehouse: another run's lease, or a lock.
WAITED = re.compile(r"^Waiting for .* to finish with the warehouse|is locked by")


@dataclass
class Server:
    dev: DagsterDev
    startup_output: str


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> ProjectEnv:
    # No monkeypatch: the variables go to the server only, as `make run` would set them.
    env = make_project_env(tmp_path_factory.mktemp("dead_runs"))
    # A user's pool limit on queued runs: it must not hold a queued run back behind a headless one.
    add_instance_settings(env.dagster_home, INSTANCE_POOLS["run granularity, limit 1"])
    return env


@pytest.fixture(scope="module")
def server(ui_env: ProjectEnv) -> Iterator[Server]:
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "dagster-dev-dead-runs.log"
    with dagster_dev(ui_env.variables, log) as dev:
        yield Server(dev, log.read_text(errors="replace"))


def wait_until_started(server: Server, run_id: str) -> None:
    wait_for(f"run {run_id} to start", lambda: run_status(server.dev, run_id) == "STARTED", START_TIMEOUT)


def test_make_run_serves_the_ui_without_printing_a_warning(server: Server):
    assert warning_lines(server.startup_output) == []


def test_a_ui_run_whose_worker_is_killed_during_dbt_leaves_nothing_behind_and_the_next_run_publishes_its_files(
    server: Server, ui_env: ProjectEnv
):
    # A new customer: the file now differs from whatever an earlier test's run published.
    customers = ui_env.data_dir / "raw_customers.csv"
    text = customers.read_bytes()
    new_id = max(int(line.split(b",")[0]) for line in text.splitlines()[1:]) + 1
    replace_file(customers, text + f"{new_id},Grace,H.\n".encode())
    before = ui_env.published_tables()

    killed = launch_job(server.dev, JOB)
    wait_until_started(server, killed)
    (worker,) = wait_for("the run worker process", lambda: run_workers(server.dev), START_TIMEOUT)
    (dbt,) = wait_for("dbt to start in the run", lambda: dbt_processes(worker.pid), START_TIMEOUT)
    worker.send_signal(signal.SIGKILL)

    # dbt dies with the worker (dagster_project/defs/transform/dbt_child.py), so nothing holds the DuckDB file.
    _, alive = psutil.wait_procs([dbt], timeout=START_TIMEOUT)
    assert not alive, "dbt outlived its run's worker"
    wait_for(
        "the run to be marked failed", lambda: run_status(server.dev, killed) == "FAILURE", RECOVERY_TIMEOUT
    )
    assert any(WORKER_DIED.search(message) for message in run_messages(server.dev, killed))
    assert ui_env.published_tables() == before

    next_run = launch_job(server.dev, JOB)

    # At once: no lock left by the dead run to wait for.
    assert wait_for_run_to_end(server.dev, next_run, RECOVERY_TIMEOUT) == "SUCCESS"
    waits = [m for m in run_messages(server.dev, next_run) if WAITED.search(m)]
    assert not waits, waits
    assert ui_env.query("select first_name from main.raw_customers where id = ?", [new_id]) == [("Grace",)]
    assert ui_env.query("select count(*) from main.customers where customer_id = ?", [new_id]) == [(1,)]
    with ui_env.instance() as instance:
        assert_catalog_matches_warehouse(ui_env, instance)


def test_a_headless_run_killed_mid_way_is_failed_by_itself_and_the_ui_run_queued_behind_it_succeeds(
    server: Server, ui_env: ProjectEnv
):
    # `make materialize` runs in its own process, which no code server watches: run monitoring
    # (or the next run, asking the same launcher) tells that it died.
    known = set(run_statuses(server.dev))
    headless = start_materialize(ui_env, ui_env.root / "headless.log")
    try:
        killed = wait_for_new_run(server.dev, known, START_TIMEOUT)
        wait_until_started(server, killed)
        headless.send_signal(signal.SIGKILL)
        headless.wait(timeout=START_TIMEOUT)
    finally:
        headless.kill()

    queued = launch_job(server.dev, JOB)

    assert wait_for_run_to_end(server.dev, queued, RECOVERY_TIMEOUT) == "SUCCESS"
    assert run_status(server.dev, killed) == "FAILURE"
    messages = "\n".join(run_messages(server.dev, killed))
    # "is gone", "is gone: PID … now belongs to another process" (PIDs wrap at 32768 here, so a
    # busy machine may reuse it before monitoring looks) or, if still unreaped, "has exited".
    assert re.search(rf"The run's process \(PID {headless.pid}\) (is gone|has exited)", messages), messages
