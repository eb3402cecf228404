"""Write-audit-publish inside one DuckDB file.

Every run writes into the private schema ``jaffle_build``: the raw loaders, and dbt, whose
target schema it is. Nobody reads it. The schema users, notebooks and the chart read is
``main``. When every blocking check and dbt test the run executes has passed, ``publish``
copies what the run rebuilt from ``jaffle_build`` into ``main`` in one DuckDB transaction, so
a reader sees either the last publish or the new one, never a mix. When a check fails,
``discard`` puts the run's objects in ``jaffle_build`` back as ``main`` has them, so the next
run, whatever it selects, builds on published data only.

Which objects a run has written but not yet published is kept in a table of the build schema
(``wap_pending``), not in memory: a run killed half-way leaves its entries behind, and the
next run's ``start`` restores those objects before it writes anything.

Tables are copied (DuckDB cannot move a table between schemas, and a view would expose the
build schema). Views are recreated in ``main`` from their SQL with every reference to the
build schema re-pointed at ``main`` through DuckDB's own parser, so a published staging view
reads the published raw tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from dagster_project.warehouse import sql_identifier, sql_string

BUILD_SCHEMA = "jaffle_build"
PUBLISHED_SCHEMA = "main"
_PENDING = f"{BUILD_SCHEMA}.wap_pending"
# The SELECT of each published view, as it reads in the build schema: what ``discard`` needs to
# put a view back, since DuckDB keeps a view's text only as a whole CREATE statement.
_VIEWS = f"{BUILD_SCHEMA}.wap_published_views"


@dataclass(frozen=True)
class Built:
    """An object a run wrote into the build schema: a table, or a view with its SELECT."""

    name: str
    view_sql: str | None = None

    @property
    def is_view(self) -> bool:
        return self.view_sql is not None


def _qualified(schema: str, name: str) -> str:
    return f"{sql_identifier(schema)}.{sql_identifier(name)}"


def ensure_schemas(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {BUILD_SCHEMA}")
    conn.execute(f"create table if not exists {_PENDING} (run_id varchar, name varchar, view_sql varchar)")
    conn.execute(f"create table if not exists {_VIEWS} (name varchar primary key, view_sql varchar)")


def start(conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, list[str]]:
    """Make the build schema match ``main`` again where an earlier run left it different.

    Returns, per earlier run, the names restored: what a run that died without cleaning up
    (killed, out of memory) had written and not published.
    """
    ensure_schemas(conn)
    stale = conn.execute(
        f"select run_id, name from {_PENDING} where run_id <> {sql_string(run_id)} order by run_id, name"
    ).fetchall()
    by_run: dict[str, list[str]] = {}
    for stale_run, name in stale:
        by_run.setdefault(stale_run, []).append(name)
    names = sorted({name for _, name in stale})
    if names:
        _restore(conn, names, forget=f"run_id <> {sql_string(run_id)}")
    return by_run


def stage(conn: duckdb.DuckDBPyConnection, run_id: str, built: list[Built]) -> None:
    """Record that this run wrote ``built`` into the build schema and has not published it."""
    ensure_schemas(conn)
    for item in built:
        conn.execute(
            f"delete from {_PENDING} where run_id = {sql_string(run_id)} and name = {sql_string(item.name)}"
        )
        view_sql = "null" if item.view_sql is None else sql_string(item.view_sql)
        conn.execute(
            f"insert into {_PENDING} values ({sql_string(run_id)}, {sql_string(item.name)}, {view_sql})"
        )


def pending(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[Built]:
    ensure_schemas(conn)
    rows = conn.execute(
        f"select name, view_sql from {_PENDING} where run_id = {sql_string(run_id)} order by name"
    ).fetchall()
    return [Built(name, view_sql) for name, view_sql in rows]


def publish(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """Copy everything this run staged into ``main``, in one transaction; return the names."""
    built = pending(conn, run_id)
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


def discard(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """Put back, in the build schema, everything this run staged; return the names."""
    names = [item.name for item in pending(conn, run_id)]
    _restore(conn, names, forget=f"run_id = {sql_string(run_id)}")
    return names


def _restore(conn: duckdb.DuckDBPyConnection, names: list[str], forget: str) -> None:
    """Make each of ``names`` in the build schema what ``main`` has, and drop the ``forget`` entries."""
    published_tables = _objects(conn, "duckdb_tables()", PUBLISHED_SCHEMA)
    published_views = dict(conn.execute(f"select name, view_sql from {_VIEWS}").fetchall())
    build_views = _objects(conn, "duckdb_views()", BUILD_SCHEMA)
    conn.execute("begin transaction")
    try:
        for name in names:
            target = _qualified(BUILD_SCHEMA, name)
            if name in published_views:
                conn.execute(f"create or replace view {target} as {published_views[name]}")
            elif name in published_tables:
                if name in build_views:
                    conn.execute(f"drop view {target}")
                conn.execute(f"create or replace table {target} as from {_qualified(PUBLISHED_SCHEMA, name)}")
            else:
                # Never published: the build schema should not have it either.
                kind = "view" if name in build_views else "table"
                conn.execute(f"drop {kind} if exists {target}")
        conn.execute(f"delete from {_PENDING} where {forget}")
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise


def _objects(conn: duckdb.DuckDBPyConnection, catalog_function: str, schema: str) -> set[str]:
    column = "view_name" if "views" in catalog_function else "table_name"
    rows = conn.execute(
        f"select {column} from {catalog_function} where schema_name = {sql_string(schema)} "
        "and database_name = current_database()"
    ).fetchall()
    return {name for (name,) in rows}


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
