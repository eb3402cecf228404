"""The warehouse role: what the assets ask of the engine that holds the tables.

Two engines play it: DuckDB (``duckdb.py``, the default, a file on this machine or MotherDuck)
and Apache Spark through Spark Connect (``spark.py``, ``JAFFLE_ENV=spark``). The assets, the
raw checks and the publish steps are written once against ``Warehouse`` and ``Session`` below;
``dagster_project/defs/resources.py`` picks the engine from the settings, once.

The resource key is ``duckdb`` for both engines. The default environment keeps the shape of
Dagster's tutorial (``duckdb: DuckDBResource``, our subclass ``DuckDBWarehouse``), and Dagster
binds a resource to an asset by its parameter's name, so the parameter, and therefore the key,
keeps that name when Spark plays the role. The ``duckdb`` concurrency pool is named the same
way: it stands for "the warehouse", whichever engine that is.

Write-audit-publish (docs/reliability.md): every run writes into the build schema
(``BUILD_SCHEMA``), which nobody reads; ``Session.publish`` makes what the run built visible
in the published schema only after every blocking check and dbt test has passed, and
``Session.discard`` puts the build schema back as the published schema has it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dagster import ConfigurableResource, TableSchema
from pydantic import Field, PrivateAttr

# Every step that opens the warehouse is in this pool; deploy/dagster.yaml lets one run of it
# through the queue at a time. The name is the tutorial's resource key, kept for both engines.
DUCKDB_POOL = "duckdb"

BUILD_SCHEMA = "jaffle_build"

LEASE_TAKEN = "This run now holds the warehouse"


class RunLeaseTimeoutError(RuntimeError):
    """Another run kept the warehouse longer than this run would wait."""


@dataclass(frozen=True)
class Built:
    """An object a run wrote into the build schema: a table, or a view with its SELECT."""

    name: str
    view_sql: str | None = None

    @property
    def is_view(self) -> bool:
        return self.view_sql is not None


class Session(ABC):
    """One connection to the warehouse, with the SQL dialect and the publish steps of its engine."""

    # Where users, notebooks and the chart read: DuckDB's ``main``, Spark's ``jaffle``.
    published_schema: str

    # SQL text, quoted for this engine.

    @abstractmethod
    def string(self, value: str) -> str:
        """A SQL string literal for ``value``."""

    @abstractmethod
    def identifier(self, name: str) -> str:
        """A quoted SQL identifier."""

    def table(self, schema: str, name: str) -> str:
        return f"{self.identifier(schema)}.{self.identifier(name)}"

    def string_tuple(self, values: list[str]) -> str:
        """``('a', 'b')``: the right side of ``in``, the same on every engine."""
        return "(" + ", ".join(self.string(value) for value in values) + ")"

    # Reading.

    @abstractmethod
    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """The column names and rows ``sql`` returns."""

    @abstractmethod
    def table_exists(self, schema: str, name: str) -> bool:
        """Whether ``schema`` has a table or view called ``name``."""

    @abstractmethod
    def column_schemas(self, names: list[str], schema: str) -> dict[str, TableSchema]:
        """The columns and types of each of ``names`` (tables or views) in ``schema`` that exists."""

    @abstractmethod
    def published_tables(self, names: list[str]) -> list[str]:
        """Which of ``names`` are published as data (not as a query re-run on each read)."""

    def count(self, schema: str, name: str) -> int:
        (row,) = self.query(f"select count(*) from {self.table(schema, name)}")[1]
        return row[0]

    def table_metadata(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """Row count and column schema of each published object, as the catalog records them."""
        schemas = self.column_schemas(names, self.published_schema)
        # Views are skipped: counting them would run their query again.
        counts = {name: self.count(self.published_schema, name) for name in self.published_tables(names)}
        return {
            name: {
                **({"dagster/column_schema": schemas[name]} if name in schemas else {}),
                **({"dagster/row_count": counts[name]} if name in counts else {}),
            }
            for name in names
        }

    # Loading.

    @abstractmethod
    def load_csv(self, table: Any, path: Path, allow_empty: bool) -> int:
        """Replace ``table`` (a ``raw_load.RawTable``) in the build schema from ``path``; return its rows."""

    # Write-audit-publish.

    @abstractmethod
    def start(self, run_id: str) -> dict[str, list[str]]:
        """Restore what runs that died left unpublished; return the names, per dead run."""

    @abstractmethod
    def stage(self, run_id: str, built: list[Built]) -> None:
        """Record that this run wrote ``built`` into the build schema and has not published it."""

    @abstractmethod
    def pending(self, run_id: str) -> list[Built]:
        """What this run staged and has not yet published or discarded."""

    @abstractmethod
    def publish(self, run_id: str) -> list[str]:
        """Make everything this run staged visible in the published schema; return the names."""

    @abstractmethod
    def discard(self, run_id: str) -> list[str]:
        """Put back, in the build schema, everything this run staged; return the names."""


class Warehouse(ConfigurableResource):
    """The warehouse resource every asset asks for (under the key ``duckdb``, see above)."""

    run_wait_timeout: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds a run waits for another run to finish with the warehouse before "
        "failing. Runs launched from the UI queue instead; this covers headless runs.",
    )

    _lease: RunLease = PrivateAttr(default_factory=lambda: RunLease())

    def hold_for_run(self, run_id: str, log: Callable[[str], None]) -> None:
        """Keep every other run out of the warehouse until this run ends (``RunLease``)."""
        raise NotImplementedError

    def session(self, read_only: bool = False) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def dbt_vars(self) -> list[str]:
        """The ``--vars`` arguments that point dbt at this warehouse."""
        return []

    @contextmanager
    def dbt_environment(self) -> Iterator[None]:
        """Variables the dbt subprocess needs, set while it starts (it copies ``os.environ``)."""
        yield


class RunLease:
    """An flock on a file, held from a run's first write until its resources are torn down.

    Write-audit-publish spans steps: between the raw step and the dbt step, the build schema
    holds this run's unpublished tables, and a second run writing there would mix its data into
    ours. Runs launched from the UI queue one at a time (the ``duckdb`` pool, run granularity);
    headless runs (``make materialize``, tests) bypass the queue, so the lease keeps them apart.
    The operating system drops the lock when the process dies, whatever killed it.
    """

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._run_id: str | None = None

    def hold(self, path: Path, what: str, run_id: str, timeout: float, log: Callable[[str], None]) -> None:
        if self._file is not None and self._run_id == run_id:
            return
        self.release()
        path.parent.mkdir(parents=True, exist_ok=True)
        lease = path.open("a+", encoding="utf-8")
        started = time.monotonic()
        waiting_for = None
        while True:
            try:
                fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(path)
                if holder != waiting_for:
                    waiting_for = holder
                    log(f"Waiting for {holder} to finish with the warehouse {what}.")
                if time.monotonic() - started > timeout:
                    lease.close()
                    raise RunLeaseTimeoutError(
                        f"{holder} has held the warehouse {what} for more than "
                        f"{timeout:.0f} s, so this run gave up waiting. Wait for that "
                        "run to end (or terminate it in the UI), then materialize again."
                    ) from None
                time.sleep(0.5)
        lease.seek(0)
        lease.truncate()
        lease.write(json.dumps({"run_id": run_id, "pid": os.getpid()}))
        lease.flush()
        self._file, self._run_id = lease, run_id
        log(f"{LEASE_TAKEN} {what} until this run ends.")

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the flock
            self._file, self._run_id = None, None


def _read_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"run {holder['run_id']} (PID {holder['pid']})"
    except (OSError, ValueError, KeyError):
        return "another run"
