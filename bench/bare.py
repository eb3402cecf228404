"""The baseline: the same work with the bare engines, no Dagster.

DuckDB loads the three CSV files into a fresh database file, then `dbt build` runs the jaffle
shop project on it. This module imports nothing from dagster_project, whose settings import
Dagster: the baseline must not pay for Dagster's import.

    python -m bench.bare --data DIR --database FILE --dbt-target-path DIR --memory-limit SIZE

Both engines get the memory limit the project's runs get (DUCKDB_MEMORY_LIMIT, or the default
sized from the machine), so the two sides spill, or not, alike.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import duckdb

REPO_ROOT = Path(__file__).resolve().parent.parent
RAW_TABLES = ("raw_customers", "raw_orders", "raw_payments")
# dbt's target schema (profiles.yml), where its sources are: the bare run loads straight into it.
DBT_SCHEMA = "jaffle_build"


def load_raw_tables(data_dir: Path, database: Path, memory_limit: str) -> None:
    with duckdb.connect(str(database), config={"memory_limit": memory_limit}) as con:
        con.execute(f"create schema {DBT_SCHEMA}")
        for table in RAW_TABLES:
            # The path is quoted, not bound: binding any parameter makes duckdb import pandas
            # (1 to 3 s), a cost the bare baseline must not carry.
            path = str(data_dir / f"{table}.csv").replace("'", "''")
            con.execute(f"create table {DBT_SCHEMA}.{table} as select * from read_csv('{path}')")


def dbt_build(
    target_path: Path, *arguments: str, env: dict[str, str] | None = None, profiles_dir: Path = REPO_ROOT
) -> int:
    # Its own target and log folder, as dagster-dbt gives each invocation, so the baseline
    # never overwrites the manifest in jaffle_shop/target that the Dagster code loads.
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            "--project-dir",
            str(REPO_ROOT / "jaffle_shop"),
            "--profiles-dir",
            str(profiles_dir),
            "--target-path",
            str(target_path),
            "--log-path",
            str(target_path),
            *arguments,
        ],
        env=env,
    ).returncode


def dbt_build_on_duckdb(database: Path, target_path: Path, memory_limit: str) -> int:
    variables = {"duckdb_database": str(database.resolve()), "duckdb_memory_limit": memory_limit}
    return dbt_build(target_path, "--vars", json.dumps(variables))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the raw_*.csv files")
    parser.add_argument("--database", type=Path, required=True, help="DuckDB file to create")
    parser.add_argument("--dbt-target-path", type=Path, required=True, help="dbt's target and log folder")
    parser.add_argument("--memory-limit", required=True, help="DuckDB's memory_limit, such as 6GiB")
    args = parser.parse_args()
    load_raw_tables(args.data, args.database, args.memory_limit)
    sys.exit(dbt_build_on_duckdb(args.database, args.dbt_target_path, args.memory_limit))


if __name__ == "__main__":
    main()
