"""DuckDB as the warehouse: the resource, with lock handling people can act on, and its session.

DuckDB allows one writer per file. Dagster's own ``DuckDBResource`` retries a locked file ten
times with growing delays (about 100 s) and then re-raises DuckDB's text. Runs of this project
already take turns through the run lease (``dagster_project/warehouse/__init__.py``), so a lock
that outlives a short wait is held by another program (a DuckDB CLI, a notebook): waiting
longer will not help, and the person needs to know which program it is.

Write-audit-publish inside one DuckDB file: versions live in the build schema ``jaffle_build``
and the published names in ``main`` are views over them. DuckDB has transactional DDL, so
``commit_publish`` re-points every view and records the new state in one transaction: a reader
sees the last publish or the new one, never a mix. What is published and pending is kept in a
table of the build schema (``wap_state``), so it survives the process.
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

from dagster_project.defs.ingest import input_contract
from dagster_project.defs.ingest.csv_errors import (
    RawFileError,
    describe_csv_error,
    files_place,
    first_bad_record,
)
from dagster_project.warehouse import BUILD_SCHEMA, Entry, Session, State, Warehouse, WarehouseLockedError

PUBLISHED_SCHEMA = "main"
_STATE_NAME = "wap_state"
_STATE = f"{BUILD_SCHEMA}.{_STATE_NAME}"
# The bookkeeping of the earlier design (tables copied into main), dropped on first use.
_RETIRED = ("wap_pending", "wap_published_views")

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
        return name in self._objects(schema)

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

    # Loading a raw CSV file. DuckDB reads the file itself with declared column types, so no row
    # passes through Python, and the load is a single transaction: a file that fails to parse
    # leaves nothing behind.

    def _create_table(self, table, headers: dict[Path, list[str]], allow_empty: bool, into: str) -> int:
        from dagster_project.defs.ingest.tables import empty_file_error, files_with_one_header

        conn = self.conn
        # Every column is read as text and converted by the input contract, in the same
        # statement: DuckDB's own conversions are looser (it rounds '12.50' to 13 for an
        # integer). Extra columns are read and dropped: the file may carry more than we use.
        selected = ", ".join(
            f"{input_contract.conversion(sql_identifier(name), declared, _matches, _fail)} as {sql_identifier(name)}"
            for name, declared in table.columns.items()
        )
        not_empty = input_contract.not_empty([sql_identifier(name) for name in table.columns], _fail)
        # The paths and the header's names are quoted as SQL literals, never spliced in raw:
        # quotes and spaces in them are safe. Day files with the same header are read by one
        # read_csv, side by side.
        reads = " union all ".join(
            f"select {selected} from {_read_csv(paths, header)} where {not_empty}"
            for header, paths in files_with_one_header(headers)
        )
        target = _qualified(BUILD_SCHEMA, into)
        ensure_schemas(conn)
        conn.execute("begin transaction")
        try:
            # Replaced, not created: a step that runs again in the same run (a retry) loads again.
            conn.execute(f"create or replace table {target} as {reads}")
            (rows,) = conn.execute(f"select count(*) from {target}").fetchone()
            if rows == 0 and not allow_empty:
                raise empty_file_error(table, [*headers])
            conn.execute("commit")
        except duckdb.Error as error:
            conn.execute("rollback")
            raise RawFileError(_describe(headers, table.columns, error)) from None
        except BaseException:
            conn.execute("rollback")
            raise
        return rows

    # The primitives of write-audit-publish (the lifecycle is in publish.py).

    def read_state(self) -> State:
        ensure_schemas(self.conn)
        published: dict[str, Entry] = {}
        pending: dict[str, dict[str, Entry]] = {}
        for run_id, name, entry, is_published in self.conn.execute(
            f"select run_id, name, entry, published from {_STATE} order by run_id, name"
        ).fetchall():
            if is_published:
                published[name] = Entry.from_json(entry)
            else:
                pending.setdefault(run_id, {})[name] = Entry.from_json(entry)
        return State(published, pending)

    def build_objects(self) -> dict[str, str]:
        objects = {name: "table" for name in self._objects(BUILD_SCHEMA, "duckdb_tables()")}
        objects.update({name: "view" for name in self._objects(BUILD_SCHEMA, "duckdb_views()")})
        objects.pop(_STATE_NAME, None)
        return objects

    def drop(self, objects: dict[str, str]) -> None:
        # Views first: a view may read a table dropped in the same call.
        for name, kind in sorted(objects.items(), key=lambda item: item[1] != "view"):
            self.conn.execute(f"drop {kind} if exists {_qualified(BUILD_SCHEMA, name)}")

    def point(self, pointers: dict[str, str], objects: dict[str, str]) -> None:
        self.conn.execute("begin transaction")
        try:
            for name, version in sorted(pointers.items()):
                if objects.get(name) == "table":
                    self.conn.execute(f"drop table {_qualified(BUILD_SCHEMA, name)}")
                self.conn.execute(
                    f"create or replace view {_qualified(BUILD_SCHEMA, name)} as "
                    f"select * from {_qualified(BUILD_SCHEMA, version)}"
                )
            self.conn.execute("commit")
        except BaseException:
            self.conn.execute("rollback")
            raise

    def freeze(self, name: str, version: str, view_sql: str | None, pointers: dict[str, str]) -> None:
        if view_sql is None:
            self.conn.execute(
                f"alter table {_qualified(BUILD_SCHEMA, name)} rename to {sql_identifier(version)}"
            )
            return
        frozen = _repoint(self.conn, view_sql, BUILD_SCHEMA, pointers)
        self.conn.execute(f"create view {_qualified(BUILD_SCHEMA, version)} as {frozen}")

    def stage(self, run_id: str, entries: dict[str, Entry]) -> None:
        ensure_schemas(self.conn)
        for name, entry in entries.items():
            self.conn.execute(
                f"insert into {_STATE} values ({sql_string(run_id)}, {sql_string(name)}, "
                f"{sql_string(entry.to_json())}, false)"
            )

    def commit_publish(self, run_id: str, entries: dict[str, Entry]) -> None:
        conn = self.conn
        published_tables = self._objects(PUBLISHED_SCHEMA, "duckdb_tables()")
        conn.execute("begin transaction")
        try:
            for name, entry in sorted(entries.items()):
                target = _qualified(PUBLISHED_SCHEMA, name)
                if name in published_tables:
                    # A table published by the copying design of earlier versions.
                    conn.execute(f"drop table {target}")
                conn.execute(
                    f"create or replace view {target} as select * from {_qualified(BUILD_SCHEMA, entry.version)}"
                )
                conn.execute(f"delete from {_STATE} where published and name = {sql_string(name)}")
                conn.execute(
                    f"insert into {_STATE} values ({sql_string(run_id)}, {sql_string(name)}, "
                    f"{sql_string(entry.to_json())}, true)"
                )
            conn.execute(f"delete from {_STATE} where not published and run_id = {sql_string(run_id)}")
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise

    def forget_pending(self, run_ids: list[str]) -> None:
        if run_ids:
            self.conn.execute(
                f"delete from {_STATE} where not published and list_contains({sql_string_list(run_ids)}, run_id)"
            )

    def _objects(self, schema: str, catalog_function: str | None = None) -> set[str]:
        functions = [catalog_function] if catalog_function else ["duckdb_tables()", "duckdb_views()"]
        found: set[str] = set()
        for function in functions:
            column = "view_name" if "views" in function else "table_name"
            rows = self.conn.execute(
                f"select {column} from {function} where schema_name = {sql_string(schema)} "
                "and database_name = current_database()"
            ).fetchall()
            found |= {name for (name,) in rows}
        return found


def _matches(column: str, pattern: str) -> str:
    return f"regexp_full_match({column}, {sql_string(pattern)})"


def _fail(message: str) -> str:
    return f"error({sql_string(message)})"


def _read_csv(paths: list[Path], header: list[str]) -> str:
    """DuckDB's strict reader over ``paths``, which share ``header``: every column as text."""
    files = ", ".join(sql_string(str(path)) for path in paths)
    columns = ", ".join(f"{sql_string(name)}: 'VARCHAR'" for name in header)
    return (
        f"read_csv([{files}], columns = {{{columns}}}, header = true, auto_detect = false,"
        " strict_mode = true, delim = ',', quote = '\"', escape = '\"')"
    )


def _describe(headers: dict[Path, list[str]], columns: dict[str, str], error: duckdb.Error) -> str:
    """What to tell people: the first record the contract refuses, found as on every engine (so
    the message is the same on Spark), else DuckDB's own error, explained."""
    # When Python's reader finds nothing wrong (this is rare: see csv_errors), DuckDB's message
    # names the file itself among its options, so a table's day files are named by their folder.
    return first_bad_record(headers, columns) or describe_csv_error(
        files_place([*headers]), next(iter(headers.values())), error
    )


def ensure_schemas(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {BUILD_SCHEMA}")
    conn.execute(
        f"create table if not exists {_STATE} "
        "(run_id varchar, name varchar, entry varchar, published boolean)"
    )
    for retired in _RETIRED:
        conn.execute(f"drop table if exists {_qualified(BUILD_SCHEMA, retired)}")


def _repoint(conn: duckdb.DuckDBPyConnection, select_sql: str, schema: str, renames: dict[str, str]) -> str:
    """``select_sql`` with every table it reads in ``schema`` renamed as ``renames`` says.

    Done on DuckDB's syntax tree, not on the text, so a string or column that happens to spell
    a table's name is left alone.
    """
    (tree,) = conn.execute(f"select json_serialize_sql({sql_string(select_sql)})").fetchone()
    parsed = json.loads(tree)
    if parsed.get("error"):
        raise ValueError(f"DuckDB could not parse a view to publish: {parsed.get('error_message')}")
    _rename_tables(parsed, schema, renames)
    (rewritten,) = conn.execute(f"select json_deserialize_sql({sql_string(json.dumps(parsed))})").fetchone()
    return rewritten


def _rename_tables(node: object, schema: str, renames: dict[str, str]) -> None:
    if isinstance(node, dict):
        if (
            node.get("type") == "BASE_TABLE"
            and node.get("schema_name") == schema
            and node.get("table_name") in renames
        ):
            node["table_name"] = renames[node["table_name"]]
            # Read from the file the view lives in, whatever name it is attached under.
            node["catalog_name"] = ""
            # DuckDB 2 also writes the name as a path, which is what it reads back.
            if "qualified_name" in node:
                node["qualified_name"]["path"] = [schema, node["table_name"]]
        for value in node.values():
            _rename_tables(value, schema, renames)
    elif isinstance(node, list):
        for value in node:
            _rename_tables(value, schema, renames)


# The resource.


class DuckDBLockedError(WarehouseLockedError):
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

    lease_file: str | None = Field(
        default=None,
        description="The run lease's file. By default a file beside a local database; a "
        "database that is not a local file (MotherDuck) needs one named here, on storage every "
        "run of the deployment shares.",
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

    def hold_for_run(self, run_id: str, log: Callable[[str], None]) -> bool:
        """Take the run lease: a file beside the database (``jaffle.duckdb.run-lease``), or
        ``lease_file`` for a database that is not a local file (MotherDuck)."""
        if self.lease_file:
            path = Path(self.lease_file)
        elif self._is_local_file:
            path = Path(f"{self.database}.run-lease")
        else:
            raise ValueError(
                f"The DuckDB database {self.database} is not a local file, so the run lease needs "
                "a file of its own: set lease_file on the duckdb resource."
            )
        return self._lease.hold(path, self.database, run_id, self.run_wait_timeout, log)

    def release_run_lease(self) -> None:
        self._lease.release()

    def dbt_vars(self) -> list[str]:
        from dagster_project.defs.transform.project import dbt_vars

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
