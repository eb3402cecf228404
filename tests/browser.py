"""What the browser test drives: `dagster dev` as `make run` starts it, and the system's Chromium."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil
import pytest

from dagster_project import system_check
from dagster_project.settings import REPO_ROOT
from tests.helpers import VENV_BIN

# A headless CI box has no GPU, a small /dev/shm and no network: turn off what would need them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    """The system's Chromium or Chrome; the test fails (never skips) without one, saying how to get it."""
    if path := system_check.browser_path(
        os.environ, sys.platform, system_check.is_executable, system_check.list_dir
    ):
        return path
    is_root = os.geteuid() == 0
    pytest.fail(
        system_check.browser_hint(os.environ, sys.platform, system_check.package_manager(), is_root),
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, condition: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if result := condition():
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}.", pytrace=False)
        time.sleep(interval)


class DagsterDev:
    """A running `dagster dev`, reachable at ``url``, with a GraphQL client for its instance."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process = process
        self.url = url
        self.log = log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.load(response)
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    def is_serving(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(
                f"dagster dev exited with code {self.process.returncode} before serving; "
                f"its output:\n{self.log.read_text(errors='replace')[-4000:]}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def code_location_loaded(self) -> bool:
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries {"
            " loadStatus locationOrLoadError { __typename } } } } }"
        )
        entries = data["workspaceOrError"]["locationEntries"]
        return bool(entries) and all(
            entry["loadStatus"] == "LOADED"
            and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for entry in entries
        )


TERMINAL_RUN_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")

RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status } } } }"
LATEST_MATERIALIZATION_QUERY = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) { runId } }
  }
}
"""


def run_statuses(server: DagsterDev) -> dict[str, str]:
    runs = server.graphql(RUNS_QUERY)["runsOrError"]["results"]
    return {run["runId"]: run["status"] for run in runs}


def wait_for_new_run(server: DagsterDev, known: set[str], timeout: float = 120) -> str:
    def new_run() -> str | None:
        return next((run for run in run_statuses(server) if run not in known), None)

    return wait_for("the UI to launch a run", new_run, timeout)


def wait_for_run_to_end(server: DagsterDev, run_id: str, timeout: float = 300) -> str:
    def ended() -> str | None:
        status = run_statuses(server)[run_id]
        return status if status in TERMINAL_RUN_STATUSES else None

    return wait_for(f"run {run_id} to end ({server.url}/runs/{run_id})", ended, timeout, 1)


def latest_materialization_run(server: DagsterDev, asset: str) -> str | None:
    data = server.graphql(LATEST_MATERIALIZATION_QUERY, {"path": [asset]})
    materializations = data["assetOrError"]["assetMaterializations"]
    return materializations[0]["runId"] if materializations else None


def stop_process_group(process: subprocess.Popen, grace: float = 15, term_grace: float = 3) -> None:
    """`dagster dev` starts a webserver, a daemon, code servers and run workers: stop them all.

    SIGTERM first, then SIGKILL after ``term_grace`` seconds: a test's server holds nothing worth
    a clean shutdown (its instance and files are the test's own), and `dagster dev` spends 10 to
    15 s tearing down here. `make run`'s own Ctrl-C is tests/test_make_run_stops.py's.
    """
    # Listed first: a child whose parent exits is reparented and could no longer be found.
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=term_grace)
    # The children outlive a `dagster dev` that exited on SIGTERM, so they are killed either way.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in descendants:
        with suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait(timeout=grace)
    psutil.wait_procs(descendants, timeout=grace)


@contextmanager
def dagster_dev(env: dict[str, str], log: Path, timeout: float = 240) -> Iterator[DagsterDev]:
    """Start `dagster dev` from the repo root as `make run` does, on a free port."""
    port = free_port()
    environment = {
        **os.environ,
        **env,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(VENV_BIN.parent),
    }
    # What `make run` runs (Makefile).
    command = [str(VENV_BIN / "dg"), "dev", "--no-check-yaml", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        # A session of its own, so the whole process tree can be stopped as one group.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        server = DagsterDev(process, f"http://127.0.0.1:{port}", log)
        wait_for("dagster dev to answer on /server_info", server.is_serving, timeout)
        wait_for("the code location to load in dagster dev", server.code_location_loaded, timeout)
        yield server
    finally:
        stop_process_group(process)
