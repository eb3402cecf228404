"""The run launcher's health check: what run monitoring learns about a started run's process.

Each test reports a RUN_START for a process of its choosing, as a run worker reports its own.
End to end, under `dagster dev`, in test_dead_runs.py.
"""

import os
import subprocess
import sys
import time

import psutil
import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun, EventLogEntry, job, op

from dagster_project.run_launcher import HealthCheckedRunLauncher
from tests.processes import wait_for


@op
def wait() -> None:
    pass


@job
def some_job() -> None:
    wait()


def created_run(instance: DagsterInstance) -> DagsterRun:
    return instance.create_run_for_job(job_def=some_job)


def started_run(instance: DagsterInstance, pid: int, started_at: float) -> DagsterRun:
    """A run whose worker, process ``pid``, reported RUN_START at ``started_at``."""
    run = created_run(instance)
    event = DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name, pid=pid)
    instance.handle_new_event(
        EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=run.run_id,
            timestamp=started_at,
            dagster_event=event,
        )
    )
    started = instance.get_run_by_id(run.run_id)
    assert started.status.value == "STARTED"
    return started


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


def test_the_project_instance_monitors_started_runs_often_enough_to_fail_a_dead_one_within_a_minute(
    instance: DagsterInstance, launcher: HealthCheckedRunLauncher
):
    assert launcher.supports_check_run_worker_health
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_poll_interval_seconds <= 30


def test_a_run_whose_process_runs_is_running(instance, launcher):
    run = started_run(instance, os.getpid(), time.time())

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "RUNNING"
    assert health.run_worker_id == str(os.getpid())


def test_a_run_whose_process_is_gone_has_failed_and_the_message_says_why(instance, launcher):
    pid = exited_process()
    run = started_run(instance, pid, time.time())

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "FAILED"
    assert health.msg.startswith(f"The run's process (PID {pid}) is gone.")
    assert "killed (for example with SIGKILL, or for lack of memory) or crashed" in health.msg


def test_a_run_whose_killed_process_its_parent_has_not_reaped_yet_has_failed(instance, launcher):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        run = started_run(instance, process.pid, time.time())
        process.kill()
        zombie = psutil.Process(process.pid)
        wait_for(lambda: zombie.status() == psutil.STATUS_ZOMBIE, "the killed process to become a zombie")

        health = launcher.check_run_worker_health(run)
    finally:
        process.kill()
        process.wait(timeout=60)

    assert health.status.value == "FAILED"
    assert f"(PID {process.pid}) has exited without finishing the run" in health.msg


def test_a_run_whose_pid_now_belongs_to_a_process_started_after_the_run_has_failed(instance, launcher):
    # This test's own process plays the stranger: it started a minute after the run.
    started_at = psutil.Process().create_time() - 60
    run = started_run(instance, os.getpid(), started_at)

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "FAILED"
    assert f"PID {os.getpid()} now belongs to another process, started after the run" in health.msg


def test_a_run_that_has_not_reported_its_process_is_not_failed_on_a_guess(instance, launcher):
    run = created_run(instance)

    health = launcher.check_run_worker_health(run)

    assert health.status.value == "RUNNING"
    assert health.msg == "The run has not reported its process yet."
