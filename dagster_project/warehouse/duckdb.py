"""DuckDB as the warehouse: the resource, with lock handling people can act on, and its session.

DuckDB allows one writer per file. Dagster's own ``DuckDBResource`` retries a locked file ten
times with growing delays (about 100 s) and then re-raises DuckDB's text. Runs of this project
are already serialised by the ``duckdb`` concurrency pool, so a lock that outlives a short wait
is held by another program (a DuckDB CLI, a notebook): waiting longer will not help, and the
person needs to know which program it is.

Write-audit-publish inside one DuckDB file: the build schema is ``jaffle_build``, the published
one ``main``. ``publish`` copies what the run rebuilt into ``main`` in one DuckDB transaction,
so a reader sees either the last publish or the new one, never a mix. Which objects a run has
written but not yet published is kept in a table of the build schema (``wap_pending``), not in
memory: a run killed half-way leaves its entries behind, and the next run's ``start`` restores
those objects before it writes anything. Tables are copied (DuckDB cannot move a table between
schemas, and a view would expose the build schema). Views are recreated in ``main`` from their
SQL with every reference to the build schema re-pointed at ``main`` through DuckDB's own
parser, so a published staging view reads the published raw tables.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import InitResourceContext, TableColumn, TableSchema
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr

from dagster_project.csv_errors import RawFileError, describe_csv_error
from dagster_project.warehouse import BUILD_SCHEMA, Built, Session, Warehouse

PUBLISHED_SCHEMA = "main"
_PENDING = f"{BUILD_SCHEMA}.wap_pending"
# The SELECT of each published view, as it reads in the build schema: what ``discard`` needs to
# put a view back, since DuckDB keeps a view's text only as a whole CREATE statement.
_VIEWS = f"{BUILD_SCHEMA}.wap_published_views"

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


def _qualified(schema: str, name: str) -> str:
    return f"{sql_identifier(schema)}.{sql_identifier(name)}"


class DuckDBSession(Session):
    """A DuckDB connection, with the build and published schemas in the same file."""

    published_schema = PUBLISHED_SCHEMA

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def string(self, value: str) -> str:
        return sql_string(value)

    def identifier(self, name: str) -> str:
        return sql_identifier(name)

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        cursor = self.conn.execute(sql)
        return [column[0] for column in cursor.description], cursor.fetchall()

    def table_exists(self, schema: str, name: str) -> bool:
        return bool(
            self.conn.execute(
                "select count(*) from duckdb_tables() where database_name = current_database() "
                f"and schema_name = {sql_string(schema)} and table_name = {sql_string(name)}"
            ).fetchone()[0]
        )

    def column_schemas(self, names: list[str], schema: str) -> dict[str, TableSchema]:
        rows = self.conn.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            f"where table_catalog = current_database() and table_schema = {sql_string(schema)} "
            f"and list_contains({sql_string_list(names)}, table_name) "
            "order by table_name, ordinal_position"
        ).fetchall()
        columns: dict[str, list[TableColumn]] = {}
        for table, column, data_type in rows:
            columns.setdefault(table, []).append(TableColumn(column, data_type))
        return {table: TableSchema(columns=found) for table, found in columns.items()}

    def published_tables(self, names: list[str]) -> list[str]:
        return sorted(set(names) & self._objects("duckdb_tables()", PUBLISHED_SCHEMA))

    # Loading a raw CSV file. DuckDB reads the file itself with declared column types, so no row
    # passes through Python, and the load is a single transaction: a file that fails to parse
    # leaves the previous table as it was.

    def load_csv(self, table, path: Path, allow_empty: bool) -> int:
        from dagster_project.raw_load import read_header, refused

        try:
            return self._replace_table(table, path, allow_empty, read_header(path, table))
        except RawFileError as error:
            raise refused(table, error) from None

    def _replace_table(self, table, path: Path, allow_empty: bool, header: list[str]) -> int:
        from dagster_project.raw_load import empty_file_error

        conn = self.conn
        # Extra columns are read as text and dropped: the file may carry more than we use.
        file_columns = ", ".join(
            f"{sql_string(name)}: {sql_string(table.columns.get(name, 'VARCHAR'))}" for name in header
        )
        selected = ", ".join(sql_identifier(name) for name in table.columns)
        build_table = _qualified(BUILD_SCHEMA, table.name)
        ensure_schemas(conn)
        conn.execute("begin transaction")
        try:
            # The path and the header's names are quoted as SQL literals, never spliced in raw:
            # quotes and spaces in them are safe.
            conn.execute(
                f"create or replace table {build_table} as select {selected} from read_csv("
                f"{sql_string(str(path))}, columns = {{{file_columns}}}, header = true,"
                " auto_detect = false, strict_mode = true,"
                " delim = ',', quote = '\"', escape = '\"')"
            )
            (rows,) = conn.execute(f"select count(*) from {build_table}").fetchone()
            if rows == 0 and not allow_empty:
                raise empty_file_error(table, path)
            conn.execute("commit")
        except duckdb.Error as error:
            conn.execute("rollback")
            raise RawFileError(describe_csv_error(path, header, error)) from None
        except BaseException:
            conn.execute("rollback")
            raise
        return rows

    # Write-audit-publish.

    def start(self, run_id: str) -> dict[str, list[str]]:
        conn = self.conn
        ensure_schemas(conn)
        stale = conn.execute(
            f"select run_id, name from {_PENDING} where run_id <> {sql_string(run_id)} order by run_id, name"
        ).fetchall()
        by_run: dict[str, list[str]] = {}
        for stale_run, name in stale:
            by_run.setdefault(stale_run, []).append(name)
        names = sorted({name for _, name in stale})
        if names:
            self._restore(names, forget=f"run_id <> {sql_string(run_id)}")
        return by_run

    def stage(self, run_id: str, built: list[Built]) -> None:
        conn = self.conn
        ensure_schemas(conn)
        for item in built:
            conn.execute(
                f"delete from {_PENDING} where run_id = {sql_string(run_id)} and name = {sql_string(item.name)}"
            )
            view_sql = "null" if item.view_sql is None else sql_string(item.view_sql)
            conn.execute(
                f"insert into {_PENDING} values ({sql_string(run_id)}, {sql_string(item.name)}, {view_sql})"
            )

    def pending(self, run_id: str) -> list[Built]:
        ensure_schemas(self.conn)
        rows = self.conn.execute(
            f"select name, view_sql from {_PENDING} where run_id = {sql_string(run_id)} order by name"
        ).fetchall()
        return [Built(name, view_sql) for name, view_sql in rows]

    def publish(self, run_id: str) -> list[str]:
        """Copy everything this run staged into ``main``, in one transaction."""
        conn = self.conn
        built = self.pending(run_id)
        conn.execute("begin transaction")
        try:
            # Tables first: a published view is bound to the published tables it reads.
            for item in sorted(built, key=lambda item: item.is_view):
                if item.is_view:
                    published_sql = _repoint(conn, item.view_sql, BUILD_SCHEMA, PUBLISHED_SCHEMA)
                    conn.execute(
                        f"create or replace view {_qualified(PUBLISHED_SCHEMA, item.name)} as {published_sql}"
                    )
                    conn.execute(f"delete from {_VIEWS} where name = {sql_string(item.name)}")
                    conn.execute(
                        f"insert into {_VIEWS} values ({sql_string(item.name)}, {sql_string(item.view_sql)})"
                    )
                else:
                    conn.execute(
                        f"create or replace table {_qualified(PUBLISHED_SCHEMA, item.name)} as "
                        f"from {_qualified(BUILD_SCHEMA, item.name)}"
                    )
            conn.execute(f"delete from {_PENDING} where run_id = {sql_string(run_id)}")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
        return [item.name for item in built]

    def discard(self, run_id: str) -> list[str]:
        names = [item.name for item in self.pending(run_id)]
        self._restore(names, forget=f"run_id = {sql_string(run_id)}")
        return names

    def _restore(self, names: list[str], forget: str) -> None:
        """Make each of ``names`` in the build schema what ``main`` has, and drop the ``forget`` entries."""
        conn = self.conn
        published_tables = self._objects("duckdb_tables()", PUBLISHED_SCHEMA)
        published_views = dict(conn.execute(f"select name, view_sql from {_VIEWS}").fetchall())
        build_views = self._objects("duckdb_views()", BUILD_SCHEMA)
        conn.execute("begin transaction")
        try:
            for name in names:
                target = _qualified(BUILD_SCHEMA, name)
                if name in published_views:
                    conn.execute(f"create or replace view {target} as {published_views[name]}")
                elif name in published_tables:
                    if name in build_views:
                        conn.execute(f"drop view {target}")
                    conn.execute(
                        f"create or replace table {target} as from {_qualified(PUBLISHED_SCHEMA, name)}"
                    )
                else:
                    # Never published: the build schema should not have it either.
                    kind = "view" if name in build_views else "table"
                    conn.execute(f"drop {kind} if exists {target}")
            conn.execute(f"delete from {_PENDING} where {forget}")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise

    def _objects(self, catalog_function: str, schema: str) -> set[str]:
        column = "view_name" if "views" in catalog_function else "table_name"
        rows = self.conn.execute(
            f"select {column} from {catalog_function} where schema_name = {sql_string(schema)} "
            "and database_name = current_database()"
        ).fetchall()
        return {name for (name,) in rows}


def ensure_schemas(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {BUILD_SCHEMA}")
    conn.execute(f"create table if not exists {_PENDING} (run_id varchar, name varchar, view_sql varchar)")
    conn.execute(f"create table if not exists {_VIEWS} (name varchar primary key, view_sql varchar)")


def _repoint(conn: duckdb.DuckDBPyConnection, select_sql: str, from_schema: str, to_schema: str) -> str:
    """``select_sql`` with every table it reads in ``from_schema`` read from ``to_schema`` instead.

    Done on DuckDB's syntax tree, not on the text, so a string or column that happens to spell
    the schema's name is left alone.
    """
    (tree,) = conn.execute(f"select json_serialize_sql({sql_string(select_sql)})").fetchone()
    parsed = json.loads(tree)
    if parsed.get("error"):
        raise ValueError(f"DuckDB could not parse a view to publish: {parsed.get('error_message')}")
    _repoint_tables(parsed, from_schema, to_schema)
    (rewritten,) = conn.execute(f"select json_deserialize_sql({sql_string(json.dumps(parsed))})").fetchone()
    return rewritten


def _repoint_tables(node: object, from_schema: str, to_schema: str) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and node.get("schema_name") == from_schema:
            node["schema_name"] = to_schema
        for value in node.values():
            _repoint_tables(value, from_schema, to_schema)
    elif isinstance(node, list):
        for value in node:
            _repoint_tables(value, from_schema, to_schema)


# The resource.


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


class DuckDBWarehouse(DuckDBResource, Warehouse):
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

    # Once one step has given up on a held file, later steps fail at once instead of waiting again.
    _gave_up_on_lock: bool = PrivateAttr(default=False)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.release_run_lease()

    def hold_for_run(self, run_id: str, log: Callable[[str], None]) -> None:
        """Take the run lease, a file beside the database (``jaffle.duckdb.run-lease``)."""
        if not self._is_local_file:
            self.release_run_lease()
            return
        path = Path(f"{self.database}.run-lease")
        self._lease.hold(path, self.database, run_id, self.run_wait_timeout, log)

    def release_run_lease(self) -> None:
        self._lease.release()

    def dbt_vars(self) -> list[str]:
        from dagster_project.dbt_project import dbt_vars

        return dbt_vars(self.database, self.memory_limit)

    @property
    def _is_local_file(self) -> bool:
        return self.database != ":memory:" and not self.database.startswith("md:")

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[DuckDBSession]:
        with self.get_connection(read_only=read_only) as conn:
            yield DuckDBSession(conn)

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
