"""The dbt project on Spark: the same models and dbt tests, through Spark Connect, give DuckDB's
`customers` and `orders` value for value, on generated data at scale 100 (10,000 customers).
The sample data is compared through Dagster in tests/test_spark_warehouse.py, and DuckDB's marts
equal dbt-labs' classic output in tests/test_materialize_all.py.

Both engines run bare (bench.bare and bench.bare_spark): the raw files loaded with declared
types, then `dbt build`, with no Dagster in between. The Dagster pipeline on Spark is tested with
the warehouse role that runs it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from bench.bare import DBT_SCHEMA, dbt_build_on_duckdb
from bench.bare import load_raw_tables as load_into_duckdb
from bench.bare_spark import BARE_SCHEMA, dbt_build_on_spark
from bench.bare_spark import load_raw_tables as load_into_spark
from dagster_project.cli.datagen import generate

pytestmark = pytest.mark.spark

MARTS = ("customers", "orders")
# Plenty for scale 100 (a few MiB of CSV), and small beside the Spark server's JVM.
DUCKDB_MEMORY_LIMIT = "1GiB"


@dataclass(frozen=True)
class Marts:
    """Each mart's column names and rows, ordered by its id."""

    columns: dict[str, list[str]]
    rows: dict[str, list[tuple]]


def marts_on_duckdb(data_dir: Path, work: Path, dbt_target: Path) -> Marts:
    database = work / "jaffle.duckdb"
    load_into_duckdb(data_dir, database, DUCKDB_MEMORY_LIMIT)
    assert dbt_build_on_duckdb(database, dbt_target, DUCKDB_MEMORY_LIMIT) == 0, (
        f"dbt build on DuckDB failed: {dbt_target}"
    )
    columns, rows = {}, {}
    with duckdb.connect(str(database), read_only=True) as conn:
        for mart in MARTS:
            cursor = conn.execute(f"select * from {DBT_SCHEMA}.{mart} order by 1")
            rows[mart] = cursor.fetchall()
            columns[mart] = [column for column, *_ in cursor.description]
    return Marts(columns, rows)


def marts_on_spark(data_dir: Path, remote: str, dbt_target: Path) -> Marts:
    from pyspark.sql import SparkSession

    load_into_spark(data_dir, remote)
    assert dbt_build_on_spark(remote, dbt_target) == 0, f"dbt build on Spark failed: {dbt_target}"
    session = SparkSession.builder.remote(remote).create()
    try:
        frames = {mart: session.table(f"{BARE_SCHEMA}.{mart}") for mart in MARTS}
        return Marts(
            {mart: frame.columns for mart, frame in frames.items()},
            {
                mart: [tuple(row) for row in frame.orderBy(frame.columns[0]).collect()]
                for mart, frame in frames.items()
            },
        )
    finally:
        session.stop()


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory: pytest.TempPathFactory, spark_connect: str):
    """The marts built from generated data at scale 100 on each engine."""
    work = tmp_path_factory.mktemp("scale_100")
    data_dir = work / "data"
    generate(100, data_dir)
    # The engines share nothing, so DuckDB's few seconds run while Spark works.
    with ThreadPoolExecutor(max_workers=1) as pool:
        on_duckdb = pool.submit(marts_on_duckdb, data_dir, work, work / "dbt-duckdb")
        on_spark = marts_on_spark(data_dir, spark_connect, work / "dbt-spark")
        return on_duckdb.result(), on_spark


# Rows in the marts: 100 times the generator's base of 100 customers and 99 orders.
EXPECTED_ROWS = {"customers": 10_000, "orders": 9_900}


@pytest.mark.parametrize("mart", MARTS)
def test_spark_marts_equal_duckdb_value_for_value(both_engines, mart):
    on_duckdb, on_spark = both_engines
    assert on_spark.columns[mart] == on_duckdb.columns[mart]
    assert len(on_spark.rows[mart]) == EXPECTED_ROWS[mart]
    # Decimal("33.00") == Decimal("33.00") and date == date: the types agree, not only the text.
    assert on_spark.rows[mart] == on_duckdb.rows[mart]
