"""Open the project's DuckDB file in the DuckDB shell (`make sql`), read-only.

Read-only because what the file's `main` schema holds is published by write-audit-publish: a shell
that writes would change what users read without any check, and would hold DuckDB's write lock.
"""

import os
import sys
from pathlib import Path

from dagster_project.settings import SettingsError, load_settings

# The shell the `duckdb-cli` package installs beside this Python, locked with the duckdb library.
DUCKDB_CLI = Path(sys.executable).with_name("duckdb")


def shell_command(database: str, engine: str) -> list[str]:
    """The command that opens ``database``; SettingsError if there is nothing to open."""
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
    if not DUCKDB_CLI.is_file():
        raise SettingsError(f"The DuckDB shell ({DUCKDB_CLI}) is not installed: run `make setup`.")
    return [str(DUCKDB_CLI), "-readonly", database]


def main() -> int:
    try:
        settings = load_settings()
        command = shell_command(settings.duckdb_database, settings.warehouse_engine)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 1
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
