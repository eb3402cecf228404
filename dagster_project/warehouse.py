"""The DuckDB resource, with lock handling people can act on.

DuckDB allows one writer per file. Dagster's own ``DuckDBResource`` retries a locked file ten
times with growing delays (about 100 s) and then re-raises DuckDB's text. Runs of this project
are already serialised by the ``duckdb`` concurrency pool, so a lock that outlives a short wait
is held by another program (a DuckDB CLI, a notebook): waiting longer will not help, and the
person needs to know which program it is.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import duckdb
from dagster import InitResourceContext, TableColumn, TableSchema
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

# Every step that opens the DuckDB file is in this pool; deploy/dagster.yaml lets one run of it
# through the queue at a time.
DUCKDB_POOL = "duckdb"

_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def sql_string(value: str) -> str:
    """A SQL string literal for ``value``, quotes doubled.

    We quote instead of binding parameters because binding any parameter makes the duckdb
    package import pandas (1 to 3 s here), which a run would otherwise never need.
    """
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string_list(values: list[str]) -> str:
    return "[" + ", ".join(sql_string(value) for value in values) + "]"


def column_schemas(
    conn: duckdb.DuckDBPyConnection, tables: list[str], schema: str = "main"
) -> dict[str, TableSchema]:
    """The columns and types of each of ``tables`` (tables or views) in ``schema`` that exists."""
    rows = conn.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        f"where table_catalog = current_database() and table_schema = {sql_string(schema)} "
        f"and list_contains({sql_string_list(tables)}, table_name) "
        "order by table_name, ordinal_position"
    ).fetchall()
    columns: dict[str, list[TableColumn]] = {}
    for table, column, data_type in rows:
        columns.setdefault(table, []).append(TableColumn(column, data_type))
    return {table: TableSchema(columns=found) for table, found in columns.items()}


class DuckDBLockedError(RuntimeError):
    """Another process holds the DuckDB file."""


LEASE_TAKEN = "This run now holds the warehouse"


class RunLeaseTimeoutError(RuntimeError):
    """Another run kept the warehouse longer than this run would wait."""


def is_lock_error(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "Could not set lock" in str(error)


def lock_message(database: str, error: BaseException, waited: float) -> str:
    holder = _HOLDER.search(str(error))
    who = f"{holder['program']} (PID {holder['pid']})" if holder else "another process"
    return (
        f"The DuckDB file {database} is locked by {who}; gave up after {waited:.0f} s. "
        "DuckDB allows one writer at a time. Close that program (a DuckDB CLI, a notebook, "
        "a SQL editor), or stop it with `kill <PID>`, then materialize again."
    )


class WarehouseResource(DuckDBResource):
    """``DuckDBResource`` that fails fast and clearly when another program holds the file."""

    memory_limit: str | None = Field(
        default=None,
        description="DuckDB's memory_limit (a size such as 6GiB) for every connection the assets "
        "open; dbt gets the same value through its vars. Beyond it DuckDB spills to a temporary "
        "folder beside the file. The settings always give one (DUCKDB_MEMORY_LIMIT); None keeps "
        "DuckDB's own default, 80% of the machine's memory.",
    )

    lock_timeout: float = Field(
        default=15.0,
        ge=0,
        le=600,
        description="Seconds to keep retrying a DuckDB file that another program holds before "
        "failing the step. Once a step has given up, later steps of the run fail at once.",
    )

    run_wait_timeout: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds a run waits for another run to finish with the warehouse before "
        "failing. Runs launched from the UI queue instead; this covers headless runs.",
    )

    # Once one step has given up on a held file, later steps fail at once instead of waiting again.
    _gave_up_on_lock: bool = PrivateAttr(default=False)
    # The run lease: an flock held from this run's first write until the run's resources are
    # torn down. The operating system drops it when the process dies, whatever killed it.
    _lease: IO[str] | None = PrivateAttr(default=None)
    _lease_run_id: str | None = PrivateAttr(default=None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.release_run_lease()

    def hold_for_run(self, run_id: str, log: Callable[[str], None]) -> None:
        """Keep every other run out of the warehouse until this run ends.

        Write-audit-publish spans steps: between the raw step and the dbt step, the build schema
        holds this run's unpublished tables, and a second run writing there would mix its data
        into ours. Runs launched from the UI queue one at a time (the ``duckdb`` pool, run
        granularity); headless runs (``make materialize``, tests) bypass the queue, so the lease
        is taken here, by whichever process runs the steps.
        """
        if self._lease is not None and self._lease_run_id == run_id:
            return
        self.release_run_lease()
        if not self._is_local_file:
            return
        path = Path(f"{self.database}.run-lease")
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
                    log(f"Waiting for {holder} to finish with the warehouse {self.database}.")
                if time.monotonic() - started > self.run_wait_timeout:
                    lease.close()
                    raise RunLeaseTimeoutError(
                        f"{holder} has held the warehouse {self.database} for more than "
                        f"{self.run_wait_timeout:.0f} s, so this run gave up waiting. Wait for that "
                        "run to end (or terminate it in the UI), then materialize again."
                    ) from None
                time.sleep(0.5)
        lease.seek(0)
        lease.truncate()
        lease.write(json.dumps({"run_id": run_id, "pid": os.getpid()}))
        lease.flush()
        self._lease, self._lease_run_id = lease, run_id
        log(f"{LEASE_TAKEN} {self.database} until this run ends.")

    def release_run_lease(self) -> None:
        if self._lease is not None:
            self._lease.close()  # closing the file drops the flock
            self._lease, self._lease_run_id = None, None

    @property
    def _is_local_file(self) -> bool:
        return self.database != ":memory:" and not self.database.startswith("md:")

    @contextmanager
    def get_connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = self._connect(read_only)
        try:
            yield conn
        finally:
            conn.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if not read_only and self._is_local_file:
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        delay = 0.1
        while True:
            try:
                config = dict(self.connection_config)
                if self.memory_limit:
                    config.setdefault("memory_limit", self.memory_limit)
                return duckdb.connect(self.database, read_only=read_only, config=config)
            except duckdb.IOException as error:
                waited = time.monotonic() - started
                if not is_lock_error(error):
                    raise
                if self._gave_up_on_lock or waited + delay > self.lock_timeout:
                    self._gave_up_on_lock = True
                    raise DuckDBLockedError(lock_message(self.database, error, waited)) from None
            # Full jitter: two runs released by the same unlock must not retry in step.
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 5.0)


def _read_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"run {holder['run_id']} (PID {holder['pid']})"
    except (OSError, ValueError, KeyError):
        return "another run"
