"""Dagster's default run launcher, plus the worker health check that run monitoring asks for.

A run whose process dies outright (SIGKILL, out of memory) never reports its end: it stays
STARTED, holds the `duckdb` pool and blocks the run queue. Dagster's run monitoring (the daemon
`dagster dev` starts; `run_monitoring` in deploy/dagster.yaml) fails such runs, which frees
their place, but it only checks runs when the launcher can tell a live worker from a dead one,
and DefaultRunLauncher cannot. This one can, for any run executed on this machine: those it
launches, and headless ones (`make materialize`, `execute_in_process`) alike.
"""

import json
from dataclasses import dataclass

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher

# Not exported from `dagster` itself; dagster-docker and dagster-k8s import them from here too.
# tests/test_run_launcher.py fails if they move.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# DefaultRunLauncher tags each run it starts with the code server that runs it ({"host", "port"}).
from dagster._core.storage.tags import GRPC_INFO_TAG

# psutil derives a process's start time from the boot time, which Linux gives in whole seconds:
# a live worker can appear to have started up to a second after it reported RUN_START.
START_TIME_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class RunWorker:
    """The process that reported a run's RUN_START, and when it did."""

    pid: int
    reported_start_at: float

    def describe_death(self) -> str | None:
        """Why this worker is dead, or None while it runs.

        A PID alone is not enough: once the worker is gone, the system may give its PID to a new
        process. A worker starts before it reports RUN_START, so a process with this PID that
        started later is someone else.
        """
        try:
            process = psutil.Process(self.pid)
            # A killed child stays in the process table, as a zombie, until its parent reaps it.
            if process.status() == psutil.STATUS_ZOMBIE:
                return f"The run's process (PID {self.pid}) has exited without finishing the run."
            if process.create_time() > self.reported_start_at + START_TIME_TOLERANCE_SECONDS:
                return (
                    f"The run's process (PID {self.pid}) is gone: PID {self.pid} now belongs to "
                    "another process, started after the run."
                )
        except psutil.NoSuchProcess:
            return f"The run's process (PID {self.pid}) is gone."
        except psutil.AccessDenied:
            return None  # another user's process: it exists, and we cannot look closer
        return None


def run_worker(instance: DagsterInstance, run_id: str) -> RunWorker | None:
    """The process executing the run, from its latest RUN_START event; None before it has one."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
    ).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event else None
    return RunWorker(pid, entry.timestamp) if pid is not None else None


class HealthCheckedRunLauncher(DefaultRunLauncher):
    """Launches runs as DefaultRunLauncher does, and tells run monitoring whose worker died."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        # Monitoring checks only STARTED runs, and a run becomes STARTED by reporting RUN_START:
        # without one there is no process to check, and failing the run would be a guess.
        worker = run_worker(self._instance, run.run_id)
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "The run has not reported its process yet.")
        if death := worker.describe_death():
            # Monitoring puts this in the run's failure message, which users read in the UI.
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"{death} {_likely_causes(run)} The run is marked failed so that the next runs "
                "can start; materialize again.",
                run_worker_id=str(worker.pid),
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(worker.pid))


def _likely_causes(run: DagsterRun) -> str:
    killed = "it was killed (for example with SIGKILL, or for lack of memory) or crashed"
    if GRPC_INFO_TAG not in run.tags:
        return f"{killed[0].upper()}{killed[1:]}."
    # A run launched from the UI, a schedule or a sensor runs inside its code server (a child
    # process, or the same container), and dies with it: under `make serve` or in a container,
    # the code server can stop while the webserver and the daemon live on.
    server = json.loads(run.tags[GRPC_INFO_TAG])
    where = f"{server.get('host')}:{server.get('port') or server.get('socket')}"
    return (
        f"It ran inside the code server at {where}, and a run ends with its code server: if "
        f"that code server stopped, restarted or was killed, that is why. Otherwise {killed}."
    )
