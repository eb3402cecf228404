"""Dagster's default run launcher, plus a worker health check that holds across process boundaries.

A run whose process dies outright (SIGKILL, out of memory) never reports its end: it stays
STARTED. Dagster's run monitoring (`run_monitoring` in deploy/dagster.yaml) fails such runs, but
only when the launcher can tell a live worker from a dead one, and DefaultRunLauncher cannot.

Run monitoring fails a run on any answer but RUNNING or SUCCESS, so this launcher answers FAILED
only when it knows, and RUNNING when it cannot tell. It never looks a PID up in a process table
it does not share with the worker: the daemon that asks may run in another container or pod, or
in a PID namespace of its own, where a worker's PID names nothing, or someone else.

- A run launched through a code server (from the UI, a schedule or a sensor) runs in a child of
  that code server, which watches its children: it fails a run whose process died within a
  second or two. So the daemon asks that code server, over gRPC as it launched the run, whether
  it still executes the run. No means the code server was restarted or replaced since.
- A run that `make materialize` executes in its own process is tagged with that process: its
  PID, start time and process table. The daemon checks it when it shares that process table.
"""

import json
import os
import socket
from pathlib import Path

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.errors import DagsterUserCodeUnreachableError

# Not exported from `dagster` itself; dagster-docker and dagster-k8s import them from here too.
# tests/test_run_launcher.py fails if they move.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# DefaultRunLauncher tags each run it starts with the code server that runs it ({"host", "port"}).
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
from dagster._serdes import deserialize_value

# The process a headless run executes in: {"process_table", "pid", "started"}.
WORKER_TAG = "jaffle/worker"
# Monitoring checks runs one after another: a code server that hangs must not hold them all.
CODE_SERVER_TIMEOUT_SECONDS = 10
# psutil computes a start time from the boot time and the process's start ticks; two readings of
# the same process agree to well within this.
SAME_START_SECONDS = 0.05
KILLED = "it was killed (for example with SIGKILL, or for lack of memory) or crashed"
WHAT_NEXT = "The run is marked failed so that the next runs can start; materialize again."


def process_table() -> str:
    """The process table this process's PIDs are numbers in: the machine's boot and PID namespace.

    A PID means the same process to two processes only when these are equal: a container (or
    `unshare --pid`) numbers its processes anew, and another machine's PIDs mean nothing here.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        # No /proc (macOS): no PID namespaces either; the host name tells machines apart.
        return socket.gethostname()
    return f"{boot}/{namespace}"


def worker_tags() -> dict[str, str]:
    """The tags for a run that this process executes itself, naming this process."""
    me = psutil.Process()
    worker = {"process_table": process_table(), "pid": me.pid, "started": me.create_time()}
    return {WORKER_TAG: json.dumps(worker)}


def reported_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The PID the run's process reported with RUN_START (in its own process table), for messages."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
    ).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event else None


def running(message: str | None = None) -> CheckRunHealthResult:
    return CheckRunHealthResult(WorkerStatus.RUNNING, message)


def failed(message: str) -> CheckRunHealthResult:
    # Monitoring puts this in the run's failure message, which users read in the UI.
    return CheckRunHealthResult(WorkerStatus.FAILED, f"{message} {WHAT_NEXT}")


def check_code_server(run: DagsterRun, pid: int | None) -> CheckRunHealthResult:
    """Ask the code server that runs ``run`` whether it still executes it."""
    server = json.loads(run.tags[GRPC_INFO_TAG])
    where = f"{server.get('host')}:{server.get('port') or server.get('socket')}"
    client = DagsterGrpcClient(
        host=server.get("host"),
        port=server.get("port"),
        socket=server.get("socket"),
        use_ssl=bool(server.get("use_ssl")),
    )
    try:
        answer = client.can_cancel_execution(
            CanCancelExecutionRequest(run_id=run.run_id), timeout=CODE_SERVER_TIMEOUT_SECONDS
        )
    except DagsterUserCodeUnreachableError:
        # Down, restarting, or out of reach for a moment: its runs may still live (a network
        # blip, an orphaned worker), so nothing is failed until it answers.
        return running(f"The code server at {where} does not answer; its runs are checked once it does.")
    if deserialize_value(answer, CanCancelExecutionResult).can_cancel:
        return running()
    process = f"The run's process (PID {pid})" if pid is not None else "The run's process"
    return failed(
        f"{process} is gone. It ran inside the code server at {where}, which no longer executes "
        "it: a run ends with its code server, so if that code server stopped, restarted or was "
        f"killed, that is why. Otherwise {KILLED}."
    )


def check_process(run: DagsterRun) -> CheckRunHealthResult:
    """Look up the process a headless run named in its tags, if it is in our process table."""
    worker = json.loads(run.tags[WORKER_TAG])
    pid = worker["pid"]
    if worker["process_table"] != process_table():
        return running(
            f"The run's process (PID {pid}) runs on another machine, or in another container or "
            "PID namespace, than this daemon: it cannot be checked from here."
        )
    try:
        process = psutil.Process(pid)
        # A killed child stays in the process table, as a zombie, until its parent reaps it.
        if process.status() == psutil.STATUS_ZOMBIE:
            return failed(
                f"The run's process (PID {pid}) has exited without finishing the run. {_cap(KILLED)}."
            )
        if abs(process.create_time() - worker["started"]) > SAME_START_SECONDS:
            return failed(
                f"The run's process (PID {pid}) is gone: PID {pid} now belongs to another "
                f"process, started after the run. {_cap(KILLED)}."
            )
    except psutil.NoSuchProcess:
        return failed(f"The run's process (PID {pid}) is gone. {_cap(KILLED)}.")
    except psutil.AccessDenied:
        return running()  # another user's process: it exists, and we cannot look closer
    return running()


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


class HealthCheckedRunLauncher(DefaultRunLauncher):
    """Launches runs as DefaultRunLauncher does, and tells run monitoring whose worker died."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if GRPC_INFO_TAG in run.tags:
            return check_code_server(run, reported_pid(self._instance, run.run_id))
        if WORKER_TAG in run.tags:
            return check_process(run)
        # Started some other way (`dagster job execute`, a script's execute_in_process): nothing
        # says where its process is, and failing the run would be a guess.
        return running("The run does not say which process executes it: it cannot be checked.")
