"""Runs of `python -m dagster_project.cli.materialize` in their own process, as `make materialize`."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path

import psutil

# A whole run takes 10-20 s here; these bound a hung run, they are not expectations.
RUN_TIMEOUT = 240
WAIT_TIMEOUT = 120


MATERIALIZE = ("-m", "dagster_project.cli.materialize")


def start_materialize(env, log: Path, command: Sequence[str] = MATERIALIZE) -> subprocess.Popen:
    """Start a run of the project's job against ``env``; its output goes to ``log``.

    ``command`` is what Python runs: `make materialize`'s module, or a test's variant of it
    (tests/paused_marts.py).
    """
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, *command],
            env={**os.environ, **env.variables},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def materialize(env, log: Path) -> int:
    process = start_materialize(env, log)
    try:
        return process.wait(timeout=RUN_TIMEOUT)
    finally:
        process.kill()


def wait_for(condition: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up after {WAIT_TIMEOUT} s waiting for {what}")


def dbt_processes(pid: int) -> list[psutil.Process]:
    """The dbt processes among the descendants of process ``pid`` (a run's process)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        # A short-lived child may exit between the listing and the look at its command line.
        with suppress(psutil.NoSuchProcess):
            if any(part.endswith("dbt") for part in child.cmdline()[:2]):
                found.append(child)
    return found


def run_workers_under(code_server: psutil.Process) -> list[psutil.Process]:
    """The processes executing runs under a code server (a process it started, or its ancestor).

    A run is a child of the code server's warm worker (the fork server, whose children share its
    command line until they exec something), or, with JAFFLE_WARM_WORKER=0, a process the code
    server spawned.
    """
    workers = []
    for process in code_server.children(recursive=True):
        with suppress(psutil.Error):  # a worker that just ended is gone, or a zombie
            command = " ".join(process.cmdline())
            if "spawn_main" in command:
                workers.append(process)
            elif FORK_SERVER in command and FORK_SERVER not in " ".join(process.parent().cmdline()):
                workers.extend(process.children())
    return workers


# What the warm worker's fork server has on its command line.
FORK_SERVER = "multiprocessing.forkserver"
