"""Apache Spark as the warehouse, through Spark Connect (``JAFFLE_ENV=spark``).

pyspark is imported only when a session is opened, so the DuckDB environments never load it.

Databases: every run writes into ``jaffle_build`` (the raw loaders, and dbt, whose target schema
it is); users, notebooks and the chart read ``jaffle``. Spark has no transaction across tables,
and dbt-spark replaces a table by dropping it and creating it again, so the published names
cannot be the tables dbt builds. Instead each published name is a view, and ``publish``:

1. copies every object the run rebuilt into a new versioned table (``jaffle.customers__v…``);
2. once every copy exists, points each published view at its new version
   (``create or replace view``, one metastore update per view);
3. drops the versions no view points at any more.

So each published name reads a complete, audited table at every moment: a failure in step 1
changes no view, and a reader never meets a dropped or half-written table. What is not atomic
is the set: during step 2, which takes a few milliseconds per view, a reader may see the new
``orders`` beside the old ``customers``. Staging views are published as snapshots the same way
(a view over a versioned copy of what the build view returned), not as views re-pointed at the
published raw tables as on DuckDB.

What a run staged and has not yet published is kept in the table properties of
``jaffle_build.wap_pending`` (Spark's parquet tables take no DELETE), so a run that died leaves
its entries behind for the next run's ``start``. ``discard`` and ``start`` put a build object
back as a view over its published name, so the next run builds on published data without a copy.

The raw files are read by the Spark server, not by this process: the path must be one the
server can open. That is the local path here, where the server runs on this machine; on a
cluster, the data folder must be on storage every node reads (a shared file system, or an
object store path through a ``DataSource`` of its own).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import InitResourceContext, TableColumn, TableSchema
from pydantic import Field, PrivateAttr

from dagster_project.csv_errors import RawFileError, locate_bad_record
from dagster_project.settings import DEFAULT_SPARK_REMOTE
from dagster_project.spark_url import connect_url, redact, shown
from dagster_project.warehouse import BUILD_SCHEMA, Built, Session, Warehouse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PUBLISHED_SCHEMA = "jaffle"
# See SparkWarehouse.dbt_environment (bench/bare_spark.py, which imports nothing from here, has a copy).
HIVE_SUPPORT_WARNING = "ignore:Failed to set spark.sql.catalogImplementation:UserWarning"
# A server on this machine answers in milliseconds and a remote one in about a second: ten
# seconds is slack for a busy machine, and the step that opens a session and the clean-up
# after it together stay within half a minute when no server answers.
CONNECT_TIMEOUT = 10.0
_PENDING = "wap_pending"
_VERSION = "__v"

# The raw tables' declared types (DuckDB's names, see raw_load.RAW_TABLES) in Spark's terms.
SPARK_TYPES = {"INTEGER": "int", "VARCHAR": "string", "DATE": "date"}


def spark_string(value: str) -> str:
    """A Spark SQL string literal: Spark reads backslash escapes, and joins '' into nothing."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def spark_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class SparkUnreachable(ConnectionError):
    """No Spark Connect server answers at the configured URL."""


class SparkWarehouseSession(Session):
    """A Spark Connect session, with the build and published databases of one Spark warehouse."""

    published_schema = PUBLISHED_SCHEMA

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._databases_exist = False

    def string(self, value: str) -> str:
        return spark_string(value)

    def identifier(self, name: str) -> str:
        return spark_identifier(name)

    def sql(self, statement: str) -> None:
        self.spark.sql(statement).collect()

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        frame = self.spark.sql(sql)
        return list(frame.columns), [tuple(row) for row in frame.collect()]

    def table_exists(self, schema: str, name: str) -> bool:
        return self.spark.catalog.tableExists(f"{schema}.{name}")

    def column_schemas(self, names: list[str], schema: str) -> dict[str, TableSchema]:
        return {
            name: TableSchema(
                columns=[
                    TableColumn(column.name, column.dataType)
                    for column in self.spark.catalog.listColumns(f"{schema}.{name}")
                ]
            )
            for name in names
            if self.table_exists(schema, name)
        }

    def published_tables(self, names: list[str]) -> list[str]:
        # Every published name is a view over a versioned table: counting it reads the table.
        return [name for name in names if self.table_exists(PUBLISHED_SCHEMA, name)]

    # Loading a raw CSV file with Spark's reader: the declared types, FAILFAST.

    def load_csv(self, table, path: Path, allow_empty: bool) -> int:
        from dagster_project.raw_load import read_header, refused

        try:
            return self._replace_table(table, path, allow_empty, read_header(path, table))
        except RawFileError as error:
            raise refused(table, error) from None

    def _replace_table(self, table, path: Path, allow_empty: bool, header: list[str]) -> int:
        from dagster_project.raw_load import empty_file_error

        # Extra columns are read as text and dropped: the file may carry more than we use.
        ddl = ", ".join(
            f"{spark_identifier(name)} {SPARK_TYPES[table.columns.get(name, 'VARCHAR')]}" for name in header
        )
        frame = (
            self.spark.read.schema(ddl)
            .options(header=True, mode="FAILFAST", quote='"', escape='"', dateFormat="yyyy-MM-dd")
            .csv(str(path))
            .select(*table.columns)
        )
        self.ensure_databases()
        self._drop(BUILD_SCHEMA, table.name)
        try:
            frame.write.saveAsTable(f"{BUILD_SCHEMA}.{table.name}", format="parquet")
        except Exception as error:
            # Spark names neither the line nor the column; the file is read again, in Python,
            # only on this error path, to find the record Spark refused.
            found = locate_bad_record(path, header, table.columns)
            reason = found or f"{path}: Spark could not read the file: {str(error).splitlines()[0]}"
            raise RawFileError(reason) from None
        rows = self.count(BUILD_SCHEMA, table.name)
        if rows == 0 and not allow_empty:
            raise empty_file_error(table, path)
        return rows

    # Write-audit-publish.

    def ensure_databases(self) -> None:
        # Once per session: each statement is a round trip to the server.
        if self._databases_exist:
            return
        self.sql(f"create database if not exists {BUILD_SCHEMA}")
        self.sql(f"create database if not exists {PUBLISHED_SCHEMA}")
        self.sql(f"create table if not exists {self._pending_table} (note string) using parquet")
        self._databases_exist = True

    @property
    def _pending_table(self) -> str:
        return self.table(BUILD_SCHEMA, _PENDING)

    def _pending_entries(self) -> list[tuple[str, str, str]]:
        """(run id, name, key) of every entry: properties ``pending.<run id>.<name>``."""
        _, rows = self.query(f"show tblproperties {self._pending_table}")
        entries = []
        for key, _value in rows:
            if key.startswith("pending."):
                run_id, name = key.removeprefix("pending.").rsplit(".", 1)
                entries.append((run_id, name, key))
        return sorted(entries)

    def _forget(self, keys: list[str]) -> None:
        if keys:
            quoted = ", ".join(spark_string(key) for key in keys)
            self.sql(f"alter table {self._pending_table} unset tblproperties if exists ({quoted})")

    def start(self, run_id: str) -> dict[str, list[str]]:
        self.ensure_databases()
        stale = [entry for entry in self._pending_entries() if entry[0] != run_id]
        by_run: dict[str, list[str]] = {}
        for stale_run, name, _ in stale:
            by_run.setdefault(stale_run, []).append(name)
        for name in sorted({name for _, name, _ in stale}):
            self._restore(name)
        self._forget([key for _, _, key in stale])
        return by_run

    def stage(self, run_id: str, built: list[Built]) -> None:
        self.ensure_databases()
        if built:
            pairs = ", ".join(f"{spark_string(f'pending.{run_id}.{item.name}')} = 'staged'" for item in built)
            self.sql(f"alter table {self._pending_table} set tblproperties ({pairs})")

    def pending(self, run_id: str) -> list[Built]:
        self.ensure_databases()
        return [Built(name) for entry_run, name, _ in self._pending_entries() if entry_run == run_id]

    def publish(self, run_id: str) -> list[str]:
        names = [item.name for item in self.pending(run_id)]
        version = f"{_VERSION}{time.time_ns()}"
        copies = []
        try:
            for name in names:
                copy = self.table(PUBLISHED_SCHEMA, f"{name}{version}")
                self.sql(
                    f"create table {copy} using parquet as select * from {self.table(BUILD_SCHEMA, name)}"
                )
                copies.append(copy)
        except BaseException:
            for copy in copies:
                self.sql(f"drop table if exists {copy}")
            raise
        # Every copy exists: now each published name moves to its copy, one view at a time.
        for name in names:
            copy = self.table(PUBLISHED_SCHEMA, f"{name}{version}")
            self.sql(f"create or replace view {self.table(PUBLISHED_SCHEMA, name)} as select * from {copy}")
        self._forget([f"pending.{run_id}.{name}" for name in names])
        for name in names:
            self._drop_old_versions(name, keep=f"{name}{version}")
        return names

    def discard(self, run_id: str) -> list[str]:
        names = [item.name for item in self.pending(run_id)]
        for name in names:
            self._restore(name)
        self._forget([f"pending.{run_id}.{name}" for name in names])
        return names

    def _restore(self, name: str) -> None:
        """Make ``name`` in the build database read what is published, or drop it if nothing is."""
        self._drop(BUILD_SCHEMA, name)
        if self.table_exists(PUBLISHED_SCHEMA, name):
            self.sql(
                f"create view {self.table(BUILD_SCHEMA, name)} as "
                f"select * from {self.table(PUBLISHED_SCHEMA, name)}"
            )

    def _drop(self, schema: str, name: str) -> None:
        if self.table_exists(schema, name):
            kind = "view" if self.spark.catalog.getTable(f"{schema}.{name}").tableType == "VIEW" else "table"
            self.sql(f"drop {kind} {self.table(schema, name)}")

    def _drop_old_versions(self, name: str, keep: str) -> None:
        prefix = f"{name}{_VERSION}"
        for table in self.spark.catalog.listTables(PUBLISHED_SCHEMA, pattern=f"{prefix}*"):
            if table.name.startswith(prefix) and table.name != keep:
                self.sql(f"drop table if exists {self.table(PUBLISHED_SCHEMA, table.name)}")


class SparkWarehouse(Warehouse):
    """A Spark Connect server as the warehouse: its URL, an optional token, and the run lease."""

    remote: str = Field(
        description="The Spark Connect URL (SPARK_REMOTE), like sc://127.0.0.1:15002, without a token."
    )
    token: str | None = Field(
        default=None,
        description="Access token of a remote cluster (SPARK_CONNECT_TOKEN); never shown or logged.",
    )
    connect_timeout: float = Field(
        default=CONNECT_TIMEOUT,
        gt=0,
        description="Seconds to wait for the server to answer before the step fails with how to start one.",
    )
    lease_file: str = Field(
        description="The run lease of this project's Spark warehouse: a file on this machine, "
        "held by the run that writes the build database."
    )
    _spark: Any = PrivateAttr(default=None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Release the run lease and end the Spark Connect session, if this resource opened one."""
        self._lease.release()
        if self._spark is not None:
            self._spark.stop()
            self._spark = None

    def hold_for_run(self, run_id: str, log: Callable[[str], None]) -> None:
        """One writing run at a time: the build database is one per warehouse, as on DuckDB."""
        self._lease.hold(Path(self.lease_file), self.remote, run_id, self.run_wait_timeout, log)

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[SparkWarehouseSession]:
        if self._spark is None:
            self._spark = self._connect()
        yield SparkWarehouseSession(self._spark)

    def _connect(self) -> SparkSession:
        """A session on a server that answers, or within ``connect_timeout`` a ``SparkUnreachable``.

        pyspark retries an unreachable server for about 20 minutes before its first query fails,
        with gRPC's UNAVAILABLE and no word of which server or what to do; so the channel is
        checked first, through pyspark's own channel builder (the same TLS, token and proxy
        settings as the session's). No message here ever holds the token: pyspark's own
        errors are redacted and carry no traceback, whose chained exceptions would hold it.
        """
        # Imported here: pyspark takes seconds to import, and only this environment needs it.
        import grpc
        from pyspark.sql import SparkSession
        from pyspark.sql.connect.client import DefaultChannelBuilder

        url = connect_url(self.remote, self.token)
        where = f"the Spark Connect server at {shown(self.remote)}"
        try:
            channel = DefaultChannelBuilder(url).toChannel()
            try:
                grpc.channel_ready_future(channel).result(timeout=self.connect_timeout)
            finally:
                channel.close()
        except grpc.FutureTimeoutError:
            raise SparkUnreachable(
                f"{where} did not answer within {self.connect_timeout:g} s. Start the local one with "
                f"'make spark' (it serves {DEFAULT_SPARK_REMOTE}), or set SPARK_REMOTE to the URL of "
                "one that runs; a remote server's token goes in SPARK_CONNECT_TOKEN."
            ) from None
        except Exception as error:
            raise SparkUnreachable(
                f"Could not connect to {where}: {redact(str(error), self.token)}"
            ) from None
        try:
            return SparkSession.builder.remote(url).create()
        except Exception as error:
            raise SparkUnreachable(
                f"Could not open a session on {where}: {redact(str(error), self.token)}"
            ) from None

    @contextmanager
    def dbt_environment(self) -> Iterator[None]:
        """dbt-spark's ``method: session`` connects to the server SPARK_REMOTE names.

        dbt-spark also asks its session builder for Hive support on every connection; through
        Spark Connect that is a request to change a static setting, which the server refuses
        with a warning, two lines per dbt node in the run's log. dbt is told to ignore it.
        """
        warnings = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), HIVE_SUPPORT_WARNING]))
        changes = {"SPARK_REMOTE": connect_url(self.remote, self.token), "PYTHONWARNINGS": warnings}
        before = {name: os.environ.get(name) for name in changes}
        os.environ.update(changes)
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
