"""The build schema and the publish step, one level down, on a DuckDB file of the test's own."""

import duckdb
import pytest

from dagster_project.warehouse import Built
from dagster_project.warehouse.duckdb import DuckDBSession, ensure_schemas


@pytest.fixture
def conn(tmp_path):
    with duckdb.connect(str(tmp_path / "shop.duckdb")) as conn:
        ensure_schemas(conn)
        yield conn


def build(conn, run_id: str, amount: int) -> None:
    """What a run writes: a raw table, a view over it, and a table built from the view."""
    conn.execute(f"create or replace table jaffle_build.raw as select {amount} as cents")
    view_sql = 'select cents / 100 as dollars from "shop"."jaffle_build"."raw"'
    conn.execute(f"create or replace view jaffle_build.stg as {view_sql}")
    conn.execute("create or replace table jaffle_build.mart as from jaffle_build.stg")
    DuckDBSession(conn).stage(run_id, [Built("raw"), Built("stg", view_sql), Built("mart")])


def read(conn, schema: str) -> tuple:
    return tuple(conn.execute(f"from {schema}.{name}").fetchone()[0] for name in ("raw", "stg", "mart"))


def test_nothing_is_visible_in_main_until_publish_then_all_of_it_is(conn):
    build(conn, "run-1", 500)
    assert conn.execute("select count(*) from duckdb_tables() where schema_name = 'main'").fetchone() == (0,)
    assert DuckDBSession(conn).publish("run-1") == ["mart", "raw", "stg"]
    assert read(conn, "main") == (500, 5, 5)


def test_a_published_view_reads_the_published_table_not_the_build_schema(conn):
    build(conn, "run-1", 500)
    DuckDBSession(conn).publish("run-1")
    conn.execute("create or replace table jaffle_build.raw as select 900 as cents")
    assert conn.execute("from main.stg").fetchone() == (5,)


def test_discard_puts_back_the_published_tables_and_view_sql(conn):
    build(conn, "run-1", 500)
    DuckDBSession(conn).publish("run-1")
    build(conn, "run-2", 700)
    conn.execute("create or replace view jaffle_build.stg as select 0 as dollars")
    assert DuckDBSession(conn).discard("run-2") == ["mart", "raw", "stg"]
    assert read(conn, "jaffle_build") == (500, 5, 5)
    assert read(conn, "main") == (500, 5, 5)


def test_the_next_run_restores_what_a_killed_run_left_unpublished(conn):
    build(conn, "run-1", 500)
    DuckDBSession(conn).publish("run-1")
    build(conn, "killed", 700)  # then the process died: no publish, no discard
    assert DuckDBSession(conn).start("run-3") == {"killed": ["mart", "raw", "stg"]}
    assert read(conn, "jaffle_build") == (500, 5, 5)
    assert DuckDBSession(conn).pending("killed") == []


def test_objects_never_published_are_dropped_from_the_build_schema(conn):
    build(conn, "killed", 700)
    DuckDBSession(conn).start("run-2")
    left = conn.execute(
        "select table_name from duckdb_tables() where schema_name = 'jaffle_build' "
        "and table_name not like 'wap_%' union all "
        "select view_name from duckdb_views() where schema_name = 'jaffle_build'"
    ).fetchall()
    assert left == []


def test_a_publish_that_fails_half_way_changes_nothing(conn):
    build(conn, "run-1", 500)
    DuckDBSession(conn).publish("run-1")
    build(conn, "run-2", 700)
    conn.execute("drop table jaffle_build.raw")  # the copy of raw fails after mart was copied
    with pytest.raises(duckdb.CatalogException):
        DuckDBSession(conn).publish("run-2")
    assert read(conn, "main") == (500, 5, 5)
