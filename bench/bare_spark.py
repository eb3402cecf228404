"""The baseline on Spark: the same work with bare Spark and bare dbt-spark, no Dagster.

Spark's CSV reader loads the three files into tables of dbt's schema through Spark Connect, then
`dbt build --target spark` runs the jaffle shop project on the same server. Like bench.bare, it
imports nothing from dagster_project.

    python -m bench.bare_spark --data DIR --remote sc://127.0.0.1:PORT --dbt-target-path DIR
"""

import argparse
import os
import sys
from pathlib import Path

from bench.bare import DBT_SCHEMA, RAW_TABLES, dbt_build

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
        session.sql(f"create database if not exists {DBT_SCHEMA}")
        for table in RAW_TABLES:
            frame = (
                session.read.schema(SPARK_SCHEMAS[table])
                .option("header", True)
                .option("mode", "FAILFAST")
                .csv(str((data_dir / f"{table}.csv").resolve()))
            )
            frame.write.mode("overwrite").saveAsTable(f"{DBT_SCHEMA}.{table}")
    finally:
        session.stop()


# dbt-spark asks its session builder for Hive support on every connection; through Spark Connect
# that is a request to change a static setting, which the server (already on Hive) refuses with
# a warning, two lines per dbt node. The same filter as dagster_project/warehouse/spark.py's.
HIVE_SUPPORT_WARNING = "ignore:Failed to set spark.sql.catalogImplementation:UserWarning"


def dbt_build_on_spark(remote: str, target_path: Path) -> int:
    # dbt-spark's session method opens its SparkSession with the builder, which connects to
    # SPARK_REMOTE when it is set: the only way to name the server to that method.
    env = {**os.environ, "SPARK_REMOTE": remote, "PYTHONWARNINGS": HIVE_SUPPORT_WARNING}
    return dbt_build(target_path, "--target", "spark", env=env)


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
