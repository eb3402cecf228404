"""The DuckDB resource, with lock handling people can act on.

DuckDB allows one writer per file. Dagster's own ``DuckDBResource`` retries a locked file ten
times with growing delays (about 100 s) and then re-raises DuckDB's text. Runs of this project
are already serialised by the ``duckdb`` concurrency pool, so a lock that outlives a short wait
is held by another program (a DuckDB CLI, a notebook): waiting longer will not help, and the
person needs to know which program it is.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import TableColumn, TableSchema
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

# Every asset that opens the DuckDB file runs in this pool; dagster.yaml limits it to one slot.
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


def column_schemas(conn: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, TableSchema]:
    """The columns and types of each of ``tables`` (tables or views) that exists."""
    rows = conn.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = current_schema() "
        f"and list_contains({sql_string_list(tables)}, table_name) "
        "order by table_name, ordinal_position"
    ).fetchall()
    columns: dict[str, list[TableColumn]] = {}
    for table, column, data_type in rows:
        columns.setdefault(table, []).append(TableColumn(column, data_type))
    return {table: TableSchema(columns=found) for table, found in columns.items()}


class DuckDBLockedError(RuntimeError):
    """Another process holds the DuckDB file."""


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

    lock_timeout: float = Field(
        default=15.0,
        ge=0,
        le=600,
        description="Seconds to keep retrying a DuckDB file that another program holds before "
        "failing the step. Once a step has given up, later steps of the run fail at once.",
    )

    # The three raw steps do not depend on each other: without this, a held file would cost
    # one full wait per step before the run failed.
    _gave_up_on_lock: bool = PrivateAttr(default=False)

    @contextmanager
    def get_connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = self._connect(read_only)
        try:
            yield conn
        finally:
            conn.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if not read_only and self.database != ":memory:" and not self.database.startswith("md:"):
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        delay = 0.1
        while True:
            try:
                return duckdb.connect(self.database, read_only=read_only, config=dict(self.connection_config))
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
