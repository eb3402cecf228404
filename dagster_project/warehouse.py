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
from dagster_duckdb import DuckDBResource
from pydantic import Field

# Every asset that opens the DuckDB file runs in this pool; dagster.yaml limits it to one slot.
DUCKDB_POOL = "duckdb"

_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class DuckDBLockedError(RuntimeError):
    """Another process holds the DuckDB file."""


def is_lock_error(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "Could not set lock" in str(error)


def lock_message(database: str, error: BaseException, waited: float) -> str:
    holder = _HOLDER.search(str(error))
    who = (
        f"{holder['program']} (PID {holder['pid']})" if holder else "another process"
    )
    return (
        f"The DuckDB file {database} is locked by {who}; gave up after {waited:.0f} s. "
        "DuckDB allows one writer at a time. Close that program (a DuckDB CLI, a notebook, "
        "a SQL editor), or stop it with `kill <PID>`, then materialize again."
    )


class WarehouseResource(DuckDBResource):
    """``DuckDBResource`` that fails fast and clearly when another program holds the file."""

    lock_timeout: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description="Seconds to keep retrying a locked DuckDB file before failing the run.",
    )

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
                return duckdb.connect(
                    self.database, read_only=read_only, config=dict(self.connection_config)
                )
            except duckdb.IOException as error:
                waited = time.monotonic() - started
                if not is_lock_error(error):
                    raise
                if waited + delay > self.lock_timeout:
                    raise DuckDBLockedError(lock_message(self.database, error, waited)) from None
            # Full jitter: two runs released by the same unlock must not retry in step.
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 5.0)
