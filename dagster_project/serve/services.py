"""The four services of `make serve`, each a process in a session of its own.

A session of its own makes each service a process group: stopping a service stops what it
started (the code server's run workers, PostgreSQL's backends) and nothing else, and Ctrl-C in
the terminal reaches only `make serve`, which then stops them in order. PID files (with each
process's start time, so a reused PID is never signalled) let `make stop` do the same from
another terminal.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from dagster_project.serve.local_postgres import (
    LocalCluster,
    ServerUser,
    accepts_connections,
    ensure_database,
)
from dagster_project.settings import PRODUCTION_DIR, REPO_ROOT, ServeSettings

VENV_BIN = Path(sys.executable).parent
LOCATION_NAME = "jaffle_dagster"
# Started in this order, stopped in the reverse one: PostgreSQL outlives everything that writes to it.
SERVICES = ("postgres", "code-server", "daemon", "webserver")
# Bounds for a busy machine, not expectations: the code server loads the project in 5 to 15 s here.
START_TIMEOUT = 180
STOP_GRACE = 20
# A crashed service is started again after 1, 2, 4, 8 and 16 s. One that crashes more often than
# that within 10 minutes has a fault that starting it again will not cure (a bad setting, a full
# disk, a port someone else took), and `make serve` stops, showing the end of its log.
MAX_RESTARTS = 5
RESTART_WINDOW = 600


class ServiceError(RuntimeError):
    """A service did not start, or exited."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class PidFile:
    """A service's PID and start time. The PID leads the service's process group; the start time
    tells the group's members from processes that reused a PID after the service ended."""

    path: Path

    def write(self, process: psutil.Process) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{process.pid} {process.create_time()}\n")

    def read(self) -> tuple[int, float] | None:
        with suppress(FileNotFoundError, ValueError):
            pid, started = self.path.read_text().split()
            return int(pid), float(started)
        return None

    def process(self) -> psutil.Process | None:
        """The process named in the file, if it still runs."""
        if not (record := self.read()):
            return None
        pid, started = record
        with suppress(psutil.Error):
            process = psutil.Process(pid)
            if abs(process.create_time() - started) < 0.01 and process.status() != psutil.STATUS_ZOMBIE:
                return process
        return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def group_members(pgid: int, started: float) -> list[psutil.Process]:
    """The live processes of the group a service led, even once the service itself has died: a
    killed code server leaves its run workers running, orphaned, in its group."""
    members = []
    for process in psutil.process_iter():
        with suppress(psutil.Error, OSError):
            # Members started with or after the leader; older ones reused a number.
            if (
                os.getpgid(process.pid) == pgid
                and process.create_time() >= started - 0.01
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                members.append(process)
    return members


def stop_group(pid_file: PidFile, stop_signal: int, grace: float = STOP_GRACE) -> bool:
    """Signal the group a service led, wait, then kill what is left; False if nothing ran."""
    if not (record := pid_file.read()) or not (members := group_members(*record)):
        return False
    pgid = record[0]
    with suppress(ProcessLookupError):
        os.killpg(pgid, stop_signal)
    leader = [member for member in members if member.pid == pgid]
    psutil.wait_procs(leader or members, timeout=grace)
    if left := group_members(*record):
        for member in left:
            with suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(left, timeout=grace)
    return True


@dataclass
class RestartBudget:
    """When to start a crashed service again, and when to stop trying."""

    crashes: dict[str, list[float]] = field(default_factory=dict)

    def next_delay(self, name: str, now: float | None = None) -> float | None:
        """Record a crash of ``name``: seconds to wait before starting it again, or None to give up."""
        now = time.monotonic() if now is None else now
        recent = [at for at in self.crashes.get(name, []) if now - at < RESTART_WINDOW] + [now]
        self.crashes[name] = recent
        return None if len(recent) > MAX_RESTARTS else 2.0 ** (len(recent) - 1)


@dataclass
class Deployment:
    """PostgreSQL, the code server, the daemon and the webserver, as `make serve` runs them."""

    settings: ServeSettings
    # The environment the services inherit (the project's own variables: DuckDB file, data…).
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        state = self.settings.state_dir
        self.dagster_home = state / "dagster_home"
        self.logs = state / "logs"
        self.cluster = LocalCluster(state)
        self.local = self.settings.postgres is None
        port = self.settings.local_postgres_port or free_port()
        self.postgres = self.settings.postgres or self.cluster.server(port)
        self.code_server_port = self.settings.code_server_port or free_port()

    @property
    def services(self) -> tuple[str, ...]:
        return SERVICES if self.local else SERVICES[1:]

    @property
    def url(self) -> str:
        return f"http://{self.settings.webserver_host}:{self.settings.webserver_port}"

    def pid_file(self, name: str) -> PidFile:
        return PidFile(self.settings.state_dir / "pids" / f"{name}.pid")

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def env(self) -> dict[str, str]:
        """What every Dagster service reads: the two files name these variables, nothing else."""
        return {
            **self.base_env,
            **self.postgres.variables,
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
            "DAGSTER_CODE_SERVER_PORT": str(self.code_server_port),
            # The venv's tools first: dagster-dbt runs `dbt` from PATH.
            "PATH": f"{VENV_BIN}{os.pathsep}{self.base_env.get('PATH', '')}",
            "VIRTUAL_ENV": str(VENV_BIN.parent),
        }

    def command(self, name: str) -> list[str]:
        workspace = str(PRODUCTION_DIR / "workspace.yaml")
        return {
            "postgres": lambda: self.cluster.command(self.postgres.port),
            "code-server": lambda: [
                *(str(VENV_BIN / "dagster"), "api", "grpc"),
                *("--module-name", "dagster_project.definitions", "--location-name", LOCATION_NAME),
                *("--host", "127.0.0.1", "--port", str(self.code_server_port)),
            ],
            "daemon": lambda: [str(VENV_BIN / "dagster-daemon"), "run", "--workspace", workspace],
            "webserver": lambda: [
                *(str(VENV_BIN / "dagster-webserver"), "--workspace", workspace),
                *("--host", self.settings.webserver_host, "--port", str(self.settings.webserver_port)),
            ],
        }[name]()

    def prepare(self) -> None:
        """The instance's home holds the production dagster.yaml as it is; the cluster exists."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        shutil.copy(PRODUCTION_DIR / "dagster.yaml", self.dagster_home / "dagster.yaml")
        if self.local:
            self.cluster.ensure_created(ServerUser.for_this_process())

    def start(self, name: str) -> subprocess.Popen:
        is_postgres = name == "postgres"
        with self.log(name).open("ab") as log:
            process = subprocess.Popen(
                self.command(name),
                cwd=self.settings.state_dir if is_postgres else REPO_ROOT,
                # PostgreSQL gets none of ours: it needs no secrets and no DAGSTER_* settings.
                env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"} if is_postgres else self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **(ServerUser.for_this_process().popen_arguments() if is_postgres else {}),
            )
        self.processes[name] = process
        self.pid_file(name).write(psutil.Process(process.pid))
        self.wait_until_ready(name)
        return process

    def wait_until_ready(self, name: str) -> None:
        ready: Callable[[], bool] = {
            "postgres": lambda: accepts_connections(self.postgres),
            "code-server": lambda: port_open(self.code_server_port),
            "daemon": lambda: True,
            "webserver": self._webserver_answers,
        }[name]
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if (code := self.processes[name].poll()) is not None:
                raise ServiceError(self.describe_exit(name, code))
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"The {name} did not start within {START_TIMEOUT} s; its log: {self.log(name)}"
                )
            time.sleep(0.5)
        if name == "postgres":
            ensure_database(self.postgres)

    def _webserver_answers(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.settings.webserver_port}/server_info", timeout=2
            ):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def describe_exit(self, name: str, code: int) -> str:
        tail = self.log(name).read_text(errors="replace")[-2000:].strip()
        return f"The {name} exited with code {code}; the end of its log ({self.log(name)}):\n{tail}"

    def start_all(self) -> None:
        self.prepare()
        for name in self.services:
            self.start(name)

    def exited(self) -> tuple[str, int] | None:
        """A service that has stopped by itself, and its exit code."""
        for name, process in self.processes.items():
            if (code := process.poll()) is not None:
                return name, code
        return None

    def restart(self, name: str) -> None:
        """Start a crashed service again, once what is left of its group is stopped: a killed
        code server leaves its run workers behind, and they must not outlive it."""
        self.stop(name)
        try:
            self.start(name)
        except ServiceError:
            self.stop(name)
            raise

    def stop(self, name: str, stop_signal: int | None = None) -> None:
        # PostgreSQL's SIGTERM waits for every client to leave; SIGINT ends their sessions now.
        default = signal.SIGINT if name == "postgres" else signal.SIGTERM
        stop_group(self.pid_file(name), stop_signal or default)
        if started := self.processes.pop(name, None):
            started.wait(timeout=STOP_GRACE)
        self.pid_file(name).remove()

    def stop_all(self) -> None:
        for name in reversed(SERVICES):
            self.stop(name)


def stop_recorded(state_dir: Path) -> list[str]:
    """Stop what the PID files in ``state_dir`` name (`make stop`); return what was running."""
    stopped = []
    supervisor = PidFile(state_dir / "pids" / "serve.pid")
    if process := supervisor.process():
        # `make serve` stops its services in order on SIGTERM, as on Ctrl-C. It shares the
        # terminal's process group, so only it is signalled.
        process.terminate()
        psutil.wait_procs([process], timeout=len(SERVICES) * STOP_GRACE)
        stopped.append("serve")
    supervisor.remove()
    # Whatever is left: `make serve` was killed outright, or is still stopping.
    for name in reversed(SERVICES):
        pid_file = PidFile(state_dir / "pids" / f"{name}.pid")
        if stop_group(pid_file, signal.SIGINT if name == "postgres" else signal.SIGTERM):
            stopped.append(name)
        pid_file.remove()
    return stopped
