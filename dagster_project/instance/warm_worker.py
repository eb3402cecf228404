"""The warm run worker: a code server's runs fork from a process that has imported the libraries.

Dagster's code server starts each run it launches (from the UI, a schedule or a sensor) in a new
Python with multiprocessing's ``spawn``: every run first imports Dagster, dagster-dbt, dbt-core,
DuckDB, pandas and plotly, about 5 s on this machine, before its first step. With the warm
worker the code server starts them with ``forkserver`` instead: one server process imports those
libraries once, and each run is a fork of it, its own process as before.

What is kept:
- Isolation: each run is still a process of its own. A run that crashes or is killed takes
  nothing else down; Terminate reaches only its run; the code server still watches each run's
  process, so run monitoring fails a dead one as before.
- Fresh code: only third-party libraries are preloaded, never ``dagster_project``. Each run
  imports the project's code from disk after the fork, so an edit is seen by the next run, as
  with ``spawn``. A Reload in the UI starts a new code server, and with it a new fork server.

``JAFFLE_WARM_WORKER=0`` turns it off (``dagster_project/settings.py``).
"""

import multiprocessing
import multiprocessing.forkserver
import sys
import threading

# Imported once by the fork server; never the project's own modules (see above). Beside the
# libraries the assets import: the instance's storage (SQLite's, and PostgreSQL's for `make serve`,
# with SQLAlchemy and alembic: 0.5 s of each run's start) and dbt's selection graph, which
# dagster-dbt imports when the definitions load.
PRELOAD = (
    "dagster",
    "dagster_dbt",
    "dagster_duckdb",
    "duckdb",
    "pandas",
    "plotly.graph_objects",
    "dagster._core.storage.sqlite_storage",
    "dagster_postgres",
    "dbt.graph.cli",
)


# Seconds from the definitions' load in a code server to the fork server's start: past the UI's
# start (`make run` answers in about 7 s here), well before a person's first click usually. Only
# when the imports happen depends on it, never whether a run is warm: ensure_running takes a lock,
# so a run and the timer starting it at once start one fork server.
FORK_SERVER_DELAY = 10.0


def in_code_server(argv: list[str] | None = None) -> bool:
    """Whether this process is a Dagster code server (``dagster api grpc``), which launches runs."""
    args = sys.argv if argv is None else argv
    return args[1:3] == ["api", "grpc"]


def enable() -> None:
    """Make this process start ``spawn`` processes with the preloaded fork server instead.

    The code server took its ``spawn`` context before it loaded the definitions, so the context
    itself is given the fork server's process and queue types. Its runs are the only processes a
    code server starts this way.

    The fork server starts a few seconds later (``FORK_SERVER_DELAY``), once the code server has
    loaded and the UI is up: its imports would otherwise share the two cores with the code
    server's, the webserver's and the daemon's, and hold `make run`'s start back by about a
    second. A run launched before then starts the fork server itself (the first run waits for its
    imports, as a spawned run would); if it ever dies, the next run starts another.
    """
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(list(PRELOAD))
    spawn = multiprocessing.get_context("spawn")
    for name in ("Process", "Queue", "Event"):
        setattr(spawn, name, getattr(forkserver, name))
    starter = threading.Timer(FORK_SERVER_DELAY, multiprocessing.forkserver.ensure_running)
    starter.daemon = True
    starter.start()
