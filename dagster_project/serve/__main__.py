"""`make serve` (python -m dagster_project.serve) and `make stop` (… serve stop)."""

from __future__ import annotations

import signal
import sys
import time

import psutil

from dagster_project.serve.local_postgres import LocalPostgresError
from dagster_project.serve.services import (
    MAX_RESTARTS,
    RESTART_WINDOW,
    Deployment,
    PidFile,
    RestartBudget,
    ServiceError,
    stop_recorded,
)
from dagster_project.settings import SettingsError, load_serve_settings


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # `make stop` sends SIGTERM: stop in order, as on Ctrl-C


def supervise(deployment: Deployment) -> int:
    """Start each service that exits by itself again, as a process manager would; give up (and
    return 1) on one that keeps crashing."""
    budget = RestartBudget()
    while True:
        if not (exited := deployment.exited()):
            time.sleep(1)
            continue
        name, code = exited
        print(deployment.describe_exit(name, code), file=sys.stderr, flush=True)
        while True:
            if (delay := budget.next_delay(name)) is None:
                print(
                    f"The {name} crashed {MAX_RESTARTS + 1} times within {RESTART_WINDOW // 60} "
                    "minutes: stopping the other services. Fix what its log says, then 'make serve'.",
                    file=sys.stderr,
                )
                return 1
            print(f"Starting the {name} again in {delay:g} s.", file=sys.stderr, flush=True)
            time.sleep(delay)
            try:
                deployment.restart(name)
            except (ServiceError, LocalPostgresError) as error:
                print(error, file=sys.stderr, flush=True)
                continue
            print(f"The {name} is back.", flush=True)
            break


def serve() -> int:
    settings = load_serve_settings()
    supervisor = PidFile(settings.state_dir / "pids" / "serve.pid")
    if running := supervisor.process():
        print(f"make serve already runs (PID {running.pid}); 'make stop' stops it.", file=sys.stderr)
        return 1
    supervisor.write(psutil.Process())
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    deployment = Deployment(settings)
    try:
        deployment.start_all()
        where = "a local cluster" if deployment.local else "the server in the environment"
        print(
            f"Serving {deployment.url}: webserver, daemon and code server, with PostgreSQL "
            f"({where}, {deployment.postgres.host}:{deployment.postgres.port}). "
            f"Logs: {deployment.logs}. Ctrl-C or 'make stop' stops them.",
            flush=True,
        )
        return supervise(deployment)
    except KeyboardInterrupt:
        print("Stopping the services…", flush=True)
        return 0
    except (ServiceError, LocalPostgresError) as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second `make stop` must not cut this short
        deployment.stop_all()
        supervisor.remove()


def stop() -> int:
    settings = load_serve_settings()
    stopped = stop_recorded(settings.state_dir)
    print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing of make serve's was running.")
    return 0


def main(arguments: list[str]) -> int:
    commands = {"serve": serve, "stop": stop}
    command = arguments[0] if arguments else "serve"
    if command not in commands or len(arguments) > 1:
        print("usage: python -m dagster_project.serve [serve|stop]", file=sys.stderr)
        return 2
    try:
        return commands[command]()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
