"""Apache Spark as the warehouse, through Spark Connect (``JAFFLE_ENV=spark``).

pyspark is imported only when a session is opened, so the DuckDB environments never load it.

Databases: versions live in ``jaffle_build`` with dbt's workspace (dbt's target schema), and
users, notebooks and the chart read views in ``jaffle``, as on DuckDB
(``dagster_project/warehouse/publish.py`` holds the lifecycle). What differs:

- Spark has no transaction across tables, so ``commit_publish`` re-points each view in its own
  metastore update: each published name reads a complete, audited version at every moment,
  but during the few milliseconds the views take, a reader may see the new ``orders`` beside
  the old ``customers``.
- A table dbt built becomes a version by ``alter table … rename`` and a view by a view of its
  own over the versions it read (its SQL re-pointed by ``repointed``): metadata changes, no copy.
- The state (what is published, what is pending) is kept in the table properties of
  ``jaffle_build.wap_state``: Spark's parquet tables take no DELETE.

The raw files are read by the Spark server, not by this process: the path must be one the
server can open. That is the local path here, where the server runs on this machine; on a
cluster, the data folder must be on storage every node reads (a shared file system, or an
object store path through a ``DataSource`` of its own).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial, reduce
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from dagster import InitResourceContext, TableColumn, TableSchema
from pydantic import Field, PrivateAttr

from dagster_project.defs.ingest import input_contract
from dagster_project.defs.ingest.csv_errors import (
    RawFileError,
    files_place,
    first_bad_record,
    refuse_unreadable,
)
from dagster_project.settings import DEFAULT_SPARK_REMOTE
from dagster_project.spark_url import connect_url, redact, shown
from dagster_project.warehouse import BUILD_SCHEMA, Entry, Session, State, Warehouse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PUBLISHED_SCHEMA = "jaffle"
# See SparkWarehouse.dbt_environment (bench/bare_spark.py, which imports nothing from here, has a copy).
HIVE_SUPPORT_WARNING = "ignore:Failed to set spark.sql.catalogImplementation:UserWarning"
_STATE = "wap_state"
# A server on this machine answers in milliseconds and a remote one in about a second: ten
# seconds is slack for a busy machine, and the step that opens a session and the clean-up
# after it together stay within half a minute when no server answers.
CONNECT_TIMEOUT = 10.0
# Queries a session sends side by side (``run_all``). A raw check on the sample is a few rows,
# and almost all of its 0.5 to 2 s is the round trip and the start of a Spark job on the server,
# which the server's threads overlap; its two cores set the useful limit.
CONCURRENT_QUERIES = 4

T = TypeVar("T")


def spark_string(value: str) -> str:
    """A Spark SQL string literal: Spark reads backslash escapes, and joins '' into nothing."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def spark_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _matches(column: str, pattern: str) -> str:
    return f"{column} rlike {spark_string(f'^{pattern}$')}"


def _fail(message: str) -> str:
    return f"raise_error({spark_string(message)})"


def repointed(select_sql: str, schema: str, renames: dict[str, str]) -> str:
    """``select_sql`` (Spark SQL) with every table it reads in ``schema`` renamed as ``renames`` says.

    Done on sqlglot's syntax tree, not on the text, so a string or column that happens to spell
    a table's name is left alone. Spark cannot rewrite a view's SQL for us (DuckDB can).
    """
    # Imported here: only publishing a view on Spark needs it.
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(select_sql, read="spark")
    except sqlglot.errors.ParseError as error:
        raise ValueError(f"sqlglot could not parse a view to publish: {error}") from None
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if table.db.lower() == schema and table.catalog in ("", "spark_catalog") and name in renames:
            table.set("this", exp.to_identifier(renames[name], quoted=True))
            table.set("db", exp.to_identifier(schema, quoted=True))
            table.set("catalog", None)
    return tree.sql(dialect="spark", comments=False)


class SparkUnreachable(ConnectionError):
    """No Spark Connect server answers at the configured URL."""


@dataclass
class _Connection:
    """One Spark Connect session of a warehouse, shared by the warehouse's ``session()`` blocks."""

    spark: SparkSession
    # Whether this connection has made sure the databases exist: a run opens a session block
    # four times or more, and each check costs three round trips.
    databases_exist: bool = False


class SparkWarehouseSession(Session):
    """A Spark Connect session, with the build and published databases of one Spark warehouse."""

    published_schema = PUBLISHED_SCHEMA

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.spark = connection.spark

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

    def run_all(self, calls: list[Callable[[], T]]) -> list[T]:
        # A Spark Connect session takes requests from several threads at once.
        with ThreadPoolExecutor(max_workers=CONCURRENT_QUERIES) as pool:
            return list(pool.map(lambda call: call(), calls))

    def column_schemas(self, names: list[str], schema: str) -> dict[str, TableSchema]:
        # The columns of every name side by side. A DataFrame's schema is one analysis round trip
        # (0.03 s here); the catalog's listColumns gives the same names and type strings in 0.08 s.
        listed = self.run_all([partial(self._fields, self.table(schema, name)) for name in names])
        return {
            name: TableSchema(
                columns=[TableColumn(field.name, field.dataType.simpleString()) for field in fields]
            )
            for name, fields in zip(names, listed, strict=True)
        }

    def _fields(self, table: str) -> list:
        return self.spark.table(table).schema.fields

    # Loading a raw CSV file with Spark's reader: the declared types, FAILFAST.

    def _create_table(self, table, headers: dict[Path, list[str]], allow_empty: bool, into: str) -> int:
        from pyspark.sql import Observation
        from pyspark.sql.functions import count, lit

        from dagster_project.defs.ingest.tables import empty_file_error, files_with_one_header

        # Spark's reader takes any bytes, loading what is not UTF-8 as replacement characters,
        # and any mix of line endings, which DuckDB refuses.
        for path in headers:
            refuse_unreadable(path)
        frames = [self._read_csv(table, header, paths) for header, paths in files_with_one_header(headers)]
        # The rows are counted as they are written, not by a query afterwards (a Spark job more).
        written = Observation(f"{into}_rows")
        frame = reduce(lambda left, right: left.unionAll(right), frames).observe(
            written, count(lit(1)).alias("rows")
        )
        self.ensure_databases()
        drop = f"drop table if exists {self.build(into)}"
        try:
            # Overwrite: a step that runs again in the same run (a retry) loads again.
            frame.write.mode("overwrite").saveAsTable(f"{BUILD_SCHEMA}.{into}", format="parquet")
        except Exception as error:
            self.sql(drop)
            # Spark names neither the file, the line nor the column; the files are read again,
            # in Python, only on this error path, to find the record Spark refused.
            reason = first_bad_record(headers, table.columns) or (
                f"{files_place([*headers])}: Spark could not read the file: {str(error).splitlines()[0]}"
            )
            raise RawFileError(reason) from None
        rows = written.get["rows"]
        if rows == 0 and not allow_empty:
            self.sql(drop)
            raise empty_file_error(table, [*headers])
        return rows

    def _read_csv(self, table, header: list[str], paths: list[Path]):
        """Spark's reader over ``paths``, which share ``header``, as the table's columns."""
        # Every column is read as text and converted by the input contract, as on DuckDB: the
        # same rules, so both engines accept the same files. Extra columns are read and dropped.
        ddl = ", ".join(f"{spark_identifier(name)} string" for name in header)
        return (
            self.spark.read.schema(ddl)
            # multiLine: a quoted value may hold a line break, as the contract allows. The price:
            # Spark reads each file in one task instead of splitting it (docs/scaling-out.md).
            .options(header=True, mode="FAILFAST", quote='"', escape='"', multiLine=True)
            .csv([str(path) for path in paths])
            # On the text, before the conversion: as on DuckDB, where the condition reads the file.
            .where(input_contract.not_empty([spark_identifier(name) for name in table.columns], _fail))
            .selectExpr(
                *(
                    f"{input_contract.conversion(spark_identifier(name), declared, _matches, _fail)} "
                    f"as {spark_identifier(name)}"
                    for name, declared in table.columns.items()
                )
            )
        )

    # The primitives of write-audit-publish (the lifecycle is in publish.py).

    def ensure_databases(self) -> None:
        # Once per connection: each statement is a round trip to the server.
        if self._connection.databases_exist:
            return
        self.run_all(
            [
                partial(self.sql, f"create database if not exists {name}")
                for name in (BUILD_SCHEMA, PUBLISHED_SCHEMA)
            ]
        )
        self.sql(f"create table if not exists {self._state_table} (note string) using parquet")
        self._connection.databases_exist = True

    @property
    def _state_table(self) -> str:
        return self.table(BUILD_SCHEMA, _STATE)

    def _properties(self) -> dict[str, str]:
        self.ensure_databases()
        _, rows = self.query(f"show tblproperties {self._state_table}")
        return {key: value for key, value in rows}

    def read_state(self) -> State:
        published: dict[str, Entry] = {}
        pending: dict[str, dict[str, Entry]] = {}
        for key, value in self._properties().items():
            if key.startswith("published."):
                published[key.removeprefix("published.")] = Entry.from_json(value)
            elif key.startswith("pending."):
                run_id, name = key.removeprefix("pending.").rsplit(".", 1)
                pending.setdefault(run_id, {})[name] = Entry.from_json(value)
        return State(published, pending)

    def build_objects(self) -> dict[str, str]:
        self.ensure_databases()
        # Two SQL listings side by side, 0.03 s each here: the catalog's listTables fetches every
        # object's details, 0.1 to 0.15 s a call, and a run lists the build database 5 times.
        # Temporary views belong to a session, not to the database.
        database = spark_identifier(BUILD_SCHEMA)
        (_, tables), (_, views) = self.run_all(
            [
                partial(self.query, f"show tables in {database}"),
                partial(self.query, f"show views in {database}"),
            ]
        )
        view_names = {name for _, name, temporary in views if not temporary}
        return {
            name: "view" if name in view_names else "table"
            for _, name, temporary in tables
            if not temporary and name != _STATE
        }

    def drop(self, objects: dict[str, str]) -> None:
        # The views first, then the tables they may read; each kind side by side.
        for kind in ("view", "table"):
            self.run_all(
                [
                    partial(self.sql, f"drop {kind} if exists {self.build(name)}")
                    for name in sorted(objects)
                    if objects[name] == kind
                ]
            )

    def point(self, pointers: dict[str, str], objects: dict[str, str]) -> None:
        def point_one(name: str, version: str) -> None:
            if objects.get(name) == "table":
                self.sql(f"drop table {self.build(name)}")
            self.sql(f"create or replace view {self.build(name)} as select * from {self.build(version)}")

        # Each name is its own metastore update, a round trip of 0.2 to 0.4 s: side by side.
        self.run_all([partial(point_one, name, version) for name, version in sorted(pointers.items())])

    def freeze(self, name: str, version: str, view_sql: str | None, pointers: dict[str, str]) -> None:
        if view_sql is None:
            self.sql(f"alter table {self.build(name)} rename to {self.build(version)}")
            return
        # A metadata change, as for a table: the view's own SQL, reading the versions its
        # pointers name now (a copy of what it returns was a Spark job per view).
        self.sql(f"create view {self.build(version)} as {repointed(view_sql, BUILD_SCHEMA, pointers)}")

    def _set(self, properties: dict[str, str]) -> None:
        if properties:
            pairs = ", ".join(
                f"{spark_string(key)} = {spark_string(value)}" for key, value in properties.items()
            )
            self.sql(f"alter table {self._state_table} set tblproperties ({pairs})")

    def _unset(self, keys: list[str]) -> None:
        if keys:
            quoted = ", ".join(spark_string(key) for key in keys)
            self.sql(f"alter table {self._state_table} unset tblproperties if exists ({quoted})")

    def stage(self, run_id: str, entries: dict[str, Entry]) -> None:
        self._set({f"pending.{run_id}.{name}": entry.to_json() for name, entry in entries.items()})

    def commit_publish(self, run_id: str, entries: dict[str, Entry]) -> None:
        # Spark has no transaction across tables: each view moves to its version in one
        # metastore update, so each name is atomic and the set is not (docs/reliability.md).
        # Sent side by side, the names move within one round trip of each other.
        self.run_all(
            [
                partial(
                    self.sql,
                    f"create or replace view {self.table(PUBLISHED_SCHEMA, name)} as "
                    f"select * from {self.build(entry.version)}",
                )
                for name, entry in sorted(entries.items())
            ]
        )
        self._set({f"published.{name}": entry.to_json() for name, entry in entries.items()})
        # ``entries`` holds every name the run left pending: no need to read the state for them.
        self._unset([f"pending.{run_id}.{name}" for name in entries])

    def forget_pending(self, run_ids: list[str]) -> None:
        prefixes = tuple(f"pending.{run_id}." for run_id in run_ids)
        if prefixes:
            self._unset([key for key in self._properties() if key.startswith(prefixes)])


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
    _connection: _Connection | None = PrivateAttr(default=None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Release the run lease and end the Spark Connect session, if this resource opened one."""
        self._lease.release()
        if self._connection is not None:
            self._connection.spark.stop()
            self._connection = None

    def hold_for_run(self, run_id: str, log: Callable[[str], None]) -> bool:
        """One writing run at a time: the build database is one per warehouse, as on DuckDB."""
        return self._lease.hold(Path(self.lease_file), self.remote, run_id, self.run_wait_timeout, log)

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[SparkWarehouseSession]:
        if self._connection is None:
            self._connection = _Connection(self._connect())
        yield SparkWarehouseSession(self._connection)

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
