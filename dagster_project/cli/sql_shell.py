"""A SQL shell on the project's DuckDB file (`make sql`), read-only, on the locked duckdb library.

Read-only because what the file's `main` schema holds is published by write-audit-publish: a
shell that writes would change what users read without any check, and would hold DuckDB's write
lock. It runs on the duckdb library the project locks, not on the `duckdb-cli` package: the
newest shell on PyPI (1.5.6) cannot open a file written by duckdb 2.0.

Statements end with `;`. `.tables` lists what is published, `.quit` (or end of input) leaves.
"""

import sys

import duckdb

from dagster_project.settings import SettingsError, load_settings

PROMPT, CONTINUE = "jaffle> ", "   ...> "


def check_database(database: str, engine: str) -> None:
    """SettingsError if there is nothing to open."""
    from pathlib import Path

    if engine != "duckdb":
        raise SettingsError(
            f"JAFFLE_ENV={engine} keeps the tables on the Spark Connect server, not in a DuckDB file; "
            "query them there (docs/scaling-out.md), or use JAFFLE_ENV=dev."
        )
    if not database.startswith("md:") and not Path(database).is_file():
        raise SettingsError(
            f"The DuckDB file {database} does not exist yet: materialize first (`make materialize`, "
            "or Materialize all under `make run`), then run `make sql` again."
        )


def statements(lines, interactive: bool):
    """Each `;`-terminated statement (or dot command) read from ``lines``."""
    pending = ""
    if interactive:
        print(PROMPT, end="", flush=True)
    for line in lines:
        stripped = line.strip()
        if not pending and stripped.startswith("."):
            yield stripped
        elif stripped:
            pending += line
            if stripped.endswith(";"):
                yield pending.strip()
                pending = ""
        if interactive:
            print(CONTINUE if pending else PROMPT, end="", flush=True)
    if pending.strip():
        yield pending.strip()


def run(conn: duckdb.DuckDBPyConnection, statement: str) -> bool:
    """Run one statement, printing its result or its error; False to leave."""
    if statement in (".quit", ".exit"):
        return False
    if statement == ".tables":
        statement = "select table_name from information_schema.tables where table_schema = 'main' order by 1"
    elif statement.startswith("."):
        print(
            f"Unknown command {statement}: use .tables or .quit, or end a SQL statement with ;",
            file=sys.stderr,
        )
        return True
    try:
        relation = conn.sql(statement)
        if relation is not None:
            relation.show(max_rows=10_000)
    except duckdb.Error as error:
        print(f"Error: {error}", file=sys.stderr)
    return True


def main() -> int:
    try:
        settings = load_settings()
        check_database(settings.duckdb_database, settings.warehouse_engine)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 1
    interactive = sys.stdin.isatty()
    with duckdb.connect(settings.duckdb_database, read_only=True) as conn:
        if interactive:
            print(f"{settings.duckdb_database} (read-only). End statements with ;  .tables  .quit")
        for statement in statements(sys.stdin, interactive):
            if not run(conn, statement):
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
