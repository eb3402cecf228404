"""The run launcher's health check: what run monitoring learns about a started run's process.

Each test makes a STARTED run tagged as a run is tagged when it runs somewhere: in a code
server (the UI's runs) or in a process of its own (`make materialize`). End to end, with the
daemon and the code server in PID namespaces of their own, in test_serve.py.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import psutil
import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    EventLogEntry,
    job,
    op,
)
from dagster._core.storage.tags import GRPC_INFO_TAG

from dagster_project.instance.run_launcher import (
    WORKER_TAG,
    HealthCheckedRunLauncher,
    process_table,
    worker_tags,
)
from dagster_project.serve.services import free_port, port_open
from dagster_project.warehouse import publish as wap
from dagster_project.warehouse import run_key
from tests.processes import wait_for


@op
def wait() -> None:
    pass


@job
def some_job() -> None:
    wait()


def started_run(instance: DagsterInstance, tags: dict[str, str], pid: int = 4) -> DagsterRun:
    """A run with ``tags`` whose worker, process ``pid`` of its own process table, reported RUN_START."""
    run = instance.create_run_for_job(job_def=some_job, tags=tags)
    event = DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name, pid=pid)
    instance.handle_new_event(
        EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=event,
        )
    )
    started = instance.get_run_by_id(run.run_id)
    assert started.status.value == "STARTED"
    return started


def headless(pid: int, started: float, table: str | None = None) -> dict[str, str]:
    worker = {"process_table": table or process_table(), "pid": pid, "started": started}
    return {WORKER_TAG: json.dumps(worker)}


def in_code_server(port: int) -> dict[str, str]:
    return {GRPC_INFO_TAG: json.dumps({"host": "127.0.0.1", "port": port})}


def exited_process() -> int:
    """The PID of a process that has exited and been reaped: no process has it now."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=60)
    return process.pid


@pytest.fixture
def launcher(instance: DagsterInstance) -> HealthCheckedRunLauncher:
    # The launcher deploy/dagster.yaml configures, as the monitoring daemon gets it.
    assert isinstance(instance.run_launcher, HealthCheckedRunLauncher)
    return instance.run_launcher


@pytest.fixture(scope="module")
def code_server() -> Iterator[int]:
    """A code server (this module's job) on a free port, executing no run: its port."""
    port = free_port()
    command = [sys.executable, "-m", "dagster", "api", "grpc", "--python-file", __file__]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, "the code server to listen")
        assert process.poll() is None, "the code server exited"
        yield port
    finally:
        process.kill()
        process.wait(timeout=60)


def test_the_project_instance_monitors_started_runs_often_enough_to_fail_a_dead_one_within_20_s(
    instance: DagsterInstance, launcher: HealthCheckedRunLauncher
):
    assert launcher.supports_check_run_worker_health
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_poll_interval_seconds <= 10


def test_make_materialize_names_its_own_process_in_its_run(instance, launcher):
    run = started_run(instance, worker_tags())

    health = launcher.check_run_worker_health(run)

    assert json.loads(run.tags[WORKER_TAG])["pid"] == os.getpid()
    assert health.status.value == "RUNNING"


def test_a_headless_run_whose_process_is_gone_has_failed_and_the_message_says_why(instance, launcher):
    pid = exited_process()
    run = started_run(instance, headless(pid, time.time()))

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "FAILED"
    assert health.msg.startswith(f"The run's process (PID {pid}) is gone.")
    assert "killed (for example with SIGKILL, or for lack of memory) or crashed" in health.msg


def test_a_headless_run_whose_killed_process_its_parent_has_not_reaped_yet_has_failed(instance, launcher):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        run = started_run(instance, headless(process.pid, psutil.Process(process.pid).create_time()))
        process.kill()
        zombie = psutil.Process(process.pid)
        wait_for(lambda: zombie.status() == psutil.STATUS_ZOMBIE, "the killed process to become a zombie")

        health = launcher.check_run_worker_health(run)
    finally:
        process.kill()
        process.wait(timeout=60)

    assert health.status.value == "FAILED"
    assert f"(PID {process.pid}) has exited without finishing the run" in health.msg


def test_a_headless_run_whose_pid_now_belongs_to_another_process_has_failed(instance, launcher):
    # This test's own process plays the stranger: the run's process started a minute before it.
    run = started_run(instance, headless(os.getpid(), psutil.Process().create_time() - 60))

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "FAILED"
    assert f"PID {os.getpid()} now belongs to another process, started after the run" in health.msg


def test_a_headless_run_in_another_process_table_is_never_failed_on_a_pid_that_means_nothing_here(
    instance, launcher
):
    # As seen by a daemon in another container: the PID is gone from *its* table.
    run = started_run(instance, headless(exited_process(), time.time(), table="another-container"))

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "RUNNING"
    assert "cannot be checked from here" in health.msg


def test_a_run_that_does_not_say_where_it_runs_is_not_failed_on_a_guess(instance, launcher):
    run = started_run(instance, {}, pid=exited_process())

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "RUNNING"


def test_a_run_its_code_server_no_longer_executes_has_failed_naming_the_code_server(
    instance, launcher, code_server: int
):
    # The code server that launched the run was restarted: the one at its address never ran it.
    run = started_run(instance, in_code_server(code_server), pid=12)

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "FAILED"
    assert health.msg.startswith("The run's process (PID 12) is gone.")
    assert (
        f"It ran inside the code server at 127.0.0.1:{code_server}, which no longer executes it" in health.msg
    )


def test_a_run_whose_code_server_does_not_answer_is_not_failed_until_it_does(instance, launcher):
    # The PID is one no process has here, as a worker's PID in a container is.
    port = free_port()
    run = started_run(instance, in_code_server(port), pid=exited_process())

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "RUNNING"
    assert f"The code server at 127.0.0.1:{port} does not answer" in health.msg


def test_clean_up_takes_a_run_as_ended_once_it_ended_or_its_process_is_gone_and_says_so(instance):
    # What write-audit-publish asks before dropping a run's versions (warehouse/publish.py).
    live = started_run(instance, worker_tags())
    gone = started_run(instance, headless(exited_process(), time.time()))
    failed, not_asked = (instance.create_run_for_job(job_def=some_job) for _ in range(2))
    for run in (failed, not_asked):
        instance.report_run_failed(run, "The run failed.")
    elsewhere = str(uuid.uuid4())  # a run of another instance: its state cannot be asked
    # A run not yet started is left to run monitoring's start timeout, its process gone or not.
    not_started = instance.create_run_for_job(job_def=some_job, tags=headless(exited_process(), time.time()))
    ended = wap.ended_runs(SimpleNamespace(instance=instance))

    asked = {run_key(run.run_id) for run in (live, gone, failed, not_started)} | {run_key(elsewhere)}
    assert ended(asked) == {run_key(gone.run_id), run_key(failed.run_id)}
    assert ended(set()) == set()
    # The dead run is reported failed, with the reason, as run monitoring would report it.
    assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED
    assert instance.get_run_by_id(not_started.run_id).status == DagsterRunStatus.NOT_STARTED
    (failure,) = instance.all_logs(gone.run_id, of_type=DagsterEventType.RUN_FAILURE)
    assert failure.message.startswith("The run's process (PID ")
