"""The warehouse role: what the assets ask of the engine that holds the tables.

Two engines play it: DuckDB (``duckdb.py``, the default, a file on this machine or MotherDuck)
and Apache Spark through Spark Connect (``spark.py``, ``JAFFLE_ENV=spark``). The assets and the
raw checks are written once against ``Warehouse`` and ``Session`` below, and the
write-audit-publish lifecycle once in ``publish.py``; ``dagster_project/defs/resources.py``
picks the engine from the settings, once.

The resource key is ``duckdb`` for both engines. The default environment keeps the shape of
Dagster's tutorial (``duckdb: DuckDBResource``, our subclass ``DuckDBWarehouse``), and Dagster
binds a resource to an asset by its parameter's name, so the parameter, and therefore the key,
keeps that name when Spark plays the role.

Write-audit-publish (docs/reliability.md): every object a run builds is a *version* of its own
in the build schema (``BUILD_SCHEMA``), named after the run (``customers__<run id>``), which
nobody reads. Each name users read in the published schema is a view over one version, and
publishing re-points those views: a metadata change whatever the tables' size.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

from dagster import ConfigurableResource, TableSchema
from pydantic import Field, PrivateAttr

BUILD_SCHEMA = "jaffle_build"

T = TypeVar("T")

LEASE_TAKEN = "This run now holds the warehouse"

# ``customers__0f8e…``: a version's name is its object's name and the run id without dashes.
_VERSION = re.compile(r"^(?P<name>.+)__(?P<run>[0-9a-f]{32})$")


def version_name(name: str, run_id: str) -> str:
    """The name of the version of ``name`` that run ``run_id`` builds."""
    return f"{name}__{run_id.replace('-', '')}"


def parse_version(version: str) -> tuple[str, str] | None:
    """(object name, run id as written in the name) of a version, or None for any other name."""
    match = _VERSION.match(version)
    return (match["name"], match["run"]) if match else None


def run_key(run_id: str) -> str:
    """A run id as version names write it."""
    return run_id.replace("-", "")


class WarehouseLockedError(RuntimeError):
    """Another program holds the warehouse (a DuckDB file open in a CLI or a notebook)."""


class RunLeaseTimeoutError(RuntimeError):
    """Another run kept the warehouse longer than this run would wait."""


@dataclass(frozen=True)
class Entry:
    """One version of an object, as the warehouse's state records it.

    ``inputs`` are the fingerprints of the raw files the version was built from, one per raw
    table upstream of it (a raw table's own file for a raw table): two published objects agree
    when they name the same fingerprint for every raw table both read.
    """

    version: str
    kind: str  # "table" or "view"
    inputs: dict[str, str] = field(default_factory=dict)
    # The versions a view version reads: kept as long as it is published.
    reads: list[str] = field(default_factory=list)
    # A raw table's file, for the catalog and for the shrink guard (which compares a file only
    # with the last one published from the same folder).
    source: str | None = None
    # A raw table's row count, as its load counted it: a version never changes, and counting it
    # again is a query (on Spark, a job). None for what dbt builds, which nobody counted.
    rows: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Entry:
        return cls(**json.loads(text))


@dataclass
class State:
    """What is published (name -> version) and what runs built and have not yet published."""

    published: dict[str, Entry]
    pending: dict[str, dict[str, Entry]]  # run id -> name -> version


class Session(ABC):
    """One connection to the warehouse, with the SQL dialect and the primitives of its engine."""

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

    def build(self, name: str) -> str:
        """An object of the build schema, quoted."""
        return self.table(BUILD_SCHEMA, name)

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
        """The columns and types of each of ``names`` (tables or views, which exist) in ``schema``."""

    def run_all(self, calls: list[Callable[[], T]]) -> list[T]:
        """The result of each call, in order; the calls may run side by side (none reads what
        another writes).

        One after the other here: a connection runs one statement at a time.
        """
        return [call() for call in calls]

    def count(self, schema: str, name: str) -> int:
        return self.counts(schema, [name])[name]

    def counts(self, schema: str, names: list[str]) -> dict[str, int]:
        """The row count of each of ``names``, in one query: on Spark each query is a round trip."""
        if not names:
            return {}
        counted = ", ".join(f"(select count(*) from {self.table(schema, name)})" for name in names)
        (row,) = self.query(f"select {counted}")[1]
        return dict(zip(names, row, strict=True))

    def table_metadata(self, entries: dict[str, Entry]) -> dict[str, dict[str, Any]]:
        """Row count and column schema of each entry's version, as the catalog records them for
        the name that reads it once published."""
        # Views are not counted: counting them would run their query again. A raw table's load
        # counted it already.
        tables = {name: entry for name, entry in entries.items() if entry.kind == "table"}
        rows = {name: entry.rows for name, entry in tables.items() if entry.rows is not None}
        uncounted = {name: entry.version for name, entry in tables.items() if name not in rows}
        schemas, counted = self.run_all(
            [
                partial(self.column_schemas, [entry.version for entry in entries.values()], BUILD_SCHEMA),
                partial(self.counts, BUILD_SCHEMA, list(uncounted.values())),
            ]
        )
        rows |= {name: counted[version] for name, version in uncounted.items()}
        return {
            name: {
                **({"dagster/column_schema": schemas[entry.version]} if entry.version in schemas else {}),
                **({"dagster/row_count": rows[name]} if name in rows else {}),
            }
            for name, entry in entries.items()
        }

    # Loading.

    def load_csv(self, table: Any, paths: list[Path], allow_empty: bool, into: str) -> int:
        """Create ``into`` in the build schema from the rows of every file in ``paths`` (one,
        or a table's day files; ``table`` is a ``RawTable`` of ``defs/ingest/tables.py``).

        Returns the row count. A file that fails to load leaves nothing behind.
        """
        from dagster_project.defs.ingest.csv_errors import RawFileError
        from dagster_project.defs.ingest.tables import read_header, refused

        try:
            return self._create_table(
                table, {path: read_header(path, table) for path in paths}, allow_empty, into
            )
        except RawFileError as error:
            raise refused(table, error) from None

    @abstractmethod
    def _create_table(self, table: Any, headers: dict[Path, list[str]], allow_empty: bool, into: str) -> int:
        """``load_csv`` once every file's header is checked: ``headers`` holds each file's."""

    # The primitives of write-audit-publish (``publish.py`` holds the lifecycle).

    @abstractmethod
    def read_state(self) -> State:
        """The published and pending entries."""

    @abstractmethod
    def build_objects(self) -> dict[str, str]:
        """Every object of the build schema: name -> "table" or "view"."""

    @abstractmethod
    def drop(self, objects: dict[str, str]) -> None:
        """Drop these objects of the build schema (name -> kind, as ``build_objects`` lists them)."""

    @abstractmethod
    def point(self, pointers: dict[str, str], objects: dict[str, str]) -> None:
        """Make each build-schema name a view over the build-schema version it maps to.

        The names dbt reads (its sources and the models it does not rebuild) are pointers: the
        run decides which version each one reads, and dbt never sees a version's name.
        ``objects`` is the build schema as ``build_objects`` listed it: a name that is a table
        is dropped first.
        """

    @abstractmethod
    def freeze(self, name: str, version: str, view_sql: str | None, pointers: dict[str, str]) -> None:
        """Keep what dbt built as ``name`` as the version ``version``.

        A table is renamed; a view gets a version of its own that reads the versions its
        pointers named (``pointers``) when it was built, so it never moves with them.
        """

    @abstractmethod
    def stage(self, run_id: str, entries: dict[str, Entry]) -> None:
        """Record versions this run built and a later step of the run publishes."""

    @abstractmethod
    def commit_publish(self, run_id: str, entries: dict[str, Entry]) -> None:
        """Point each published name at its new version, record it, and forget the run's pending."""

    @abstractmethod
    def forget_pending(self, run_ids: list[str]) -> None:
        """Drop the pending records of these runs."""


class Warehouse(ConfigurableResource):
    """The warehouse resource every asset asks for (under the key ``duckdb``, see above)."""

    run_wait_timeout: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds a run waits for another run to finish with the warehouse before "
        "failing, wherever it was launched from (the UI, automation or the command line).",
    )

    _lease: RunLease = PrivateAttr(default_factory=lambda: RunLease())

    def hold_for_run(self, run_id: str, log: Callable[[str], None]) -> bool:
        """Keep every other run out of the warehouse until this run ends (``RunLease``).

        True when the lease is taken now, False when this process holds it for the run already.
        """
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

    def dbt_target_path(self) -> Path:
        """dbt's target folder for the run holding the lease: beside the lease, kept between runs.

        dbt parses the whole project again (2 to 3 s here) unless its target folder holds the
        partial parse of a run with the same vars and profile: every run of one warehouse has
        the same ones, while the copy dagster-dbt makes of ``jaffle_shop/target``'s was parsed
        with none. Only the run holding the lease writes to it, so runs never share it at once.
        """
        lease = self._lease.path
        if lease is None:
            raise RuntimeError("dbt_target_path() needs the run lease: call hold_for_run() first.")
        return lease.with_name(lease.name.removesuffix(".run-lease") + ".dbt-target")


class RunLease:
    """An flock on a file, held from a run's first step on the warehouse until its resources are
    torn down: the one mechanism that keeps runs apart.

    dbt builds in one workspace (the build schema's unversioned names, which dbt's manifest
    fixes), and DuckDB allows one writing process per file, so one run works at a time, from its
    first step to its last. It is taken in the run's process, whatever launched it (the UI's
    queue, the sensor, ``make materialize``, a test), so no instance setting (pools, queue
    limits) is needed or can make two holders wait on each other: a run waits here only for a
    run that already holds the whole warehouse and needs nothing else to finish. The project's
    ops declare no concurrency pool for that reason. The operating system drops the lock when
    the process dies, whatever killed it.
    """

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._run_id: str | None = None
        self.path: Path | None = None

    def hold(self, path: Path, what: str, run_id: str, timeout: float, log: Callable[[str], None]) -> bool:
        """Take the lease for ``run_id``: True once taken, False if this process holds it already."""
        if self._file is not None and self._run_id == run_id:
            return False
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
        self._file, self._run_id, self.path = lease, run_id, path
        log(f"{LEASE_TAKEN} {what} until this run ends.")
        return True

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
