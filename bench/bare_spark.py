"""The baseline on Spark: the same work with bare Spark and bare dbt-spark, no Dagster.

Spark's CSV reader loads the three files into tables of dbt's schema through Spark Connect, then
`dbt build --target spark` runs the jaffle shop project on the same server. Like bench.bare, it
imports nothing from dagster_project.

It builds in a database of its own, ``bare_build``, not the project's ``jaffle_build``: sharing
one, each side of the benchmark would spend its rounds replacing what the other left there (the
Dagster run dropping the bare raw tables, dbt dropping the other side's marts).

    python -m bench.bare_spark --data DIR --remote sc://127.0.0.1:PORT --dbt-target-path DIR
"""

import argparse
import os
import sys
from pathlib import Path

import yaml

from bench.bare import RAW_TABLES, REPO_ROOT, dbt_build

BARE_SCHEMA = "bare_build"

# The types the raw assets declare (dagster_project/defs/ingest/tables.py), in Spark's DDL: the baseline
# reads the files as the pipeline does, with no inference pass over the data.
SPARK_SCHEMAS = {
    "raw_customers": "id int, first_name string, last_name string",
    "raw_orders": "id int, user_id int, order_date date, status string",
    "raw_payments": "id int, order_id int, payment_method string, amount int",
}


def load_raw_tables(data_dir: Path, remote: str) -> None:
    """Replace the three raw tables of dbt's schema with the files in ``data_dir``.

    The server reads the files itself, so ``data_dir`` must be a path on the server's machine.
    """
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(remote).create()
    try:
        session.sql(f"create database if not exists {BARE_SCHEMA}")
        for table in RAW_TABLES:
            frame = (
                session.read.schema(SPARK_SCHEMAS[table])
                .option("header", True)
                .option("mode", "FAILFAST")
                .csv(str((data_dir / f"{table}.csv").resolve()))
            )
            frame.write.mode("overwrite").saveAsTable(f"{BARE_SCHEMA}.{table}")
    finally:
        session.stop()


# dbt-spark asks its session builder for Hive support on every connection; through Spark Connect
# that is a request to change a static setting, which the server (already on Hive) refuses with
# a warning, two lines per dbt node. The same filter as dagster_project/warehouse/spark.py's.
HIVE_SUPPORT_WARNING = "ignore:Failed to set spark.sql.catalogImplementation:UserWarning"


def bare_profiles(folder: Path) -> Path:
    """A profiles.yml in ``folder`` with the project's spark target, building in BARE_SCHEMA."""
    profiles = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text(encoding="utf-8"))
    spark = {**profiles["jaffle_shop"]["outputs"]["spark"], "schema": BARE_SCHEMA}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profiles.yml").write_text(
        yaml.safe_dump({"jaffle_shop": {"target": "spark", "outputs": {"spark": spark}}}), encoding="utf-8"
    )
    return folder


def dbt_build_on_spark(remote: str, target_path: Path) -> int:
    # dbt-spark's session method opens its SparkSession with the builder, which connects to
    # SPARK_REMOTE when it is set: the only way to name the server to that method.
    env = {**os.environ, "SPARK_REMOTE": remote, "PYTHONWARNINGS": HIVE_SUPPORT_WARNING}
    profiles = bare_profiles(target_path / "profiles")
    return dbt_build(target_path, "--target", "spark", env=env, profiles_dir=profiles)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_spark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the raw_*.csv files")
    parser.add_argument("--remote", required=True, help="the Spark Connect URL, sc://HOST:PORT")
    parser.add_argument("--dbt-target-path", type=Path, required=True, help="dbt's target and log folder")
    args = parser.parse_args()
    load_raw_tables(args.data, args.remote)
    sys.exit(dbt_build_on_spark(args.remote, args.dbt_target_path))


if __name__ == "__main__":
    main()
