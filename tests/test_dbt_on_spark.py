"""The dbt project on Spark: the same models and dbt tests, through Spark Connect, give DuckDB's
`customers` and `orders` value for value, on dbt-labs' classic data and on generated data.

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
from bench.bare_spark import dbt_build_on_spark
from bench.bare_spark import load_raw_tables as load_into_spark
from dagster_project.datagen import generate
from tests.helpers import CLASSIC_DATA_DIR

pytestmark = pytest.mark.spark

MARTS = ("customers", "orders")


@dataclass(frozen=True)
class Marts:
    """Each mart's column names and rows, ordered by its id."""

    columns: dict[str, list[str]]
    rows: dict[str, list[tuple]]


def marts_on_duckdb(data_dir: Path, work: Path, dbt_target: Path) -> Marts:
    database = work / "jaffle.duckdb"
    load_into_duckdb(data_dir, database)
    assert dbt_build_on_duckdb(database, dbt_target) == 0, f"dbt build on DuckDB failed: {dbt_target}"
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
        frames = {mart: session.table(f"{DBT_SCHEMA}.{mart}") for mart in MARTS}
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
def dbt_targets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dbt target folder per engine for the module: the second build of each reuses the
    first one's parse (dbt's partial parsing), 3 to 4 s here."""
    return tmp_path_factory.mktemp("dbt_targets")


@pytest.fixture(scope="module", params=["classic", "scale 100"])
def both_engines(request, tmp_path_factory: pytest.TempPathFactory, dbt_targets: Path, spark_connect: str):
    """The marts built from one data set on each engine: dbt-labs' classic data, or scale 100."""
    work = tmp_path_factory.mktemp(request.param.replace(" ", "_"))
    data_dir = CLASSIC_DATA_DIR
    if request.param == "scale 100":
        data_dir = work / "data"
        generate(100, data_dir)
    # The engines share nothing, so DuckDB's few seconds run while Spark works.
    with ThreadPoolExecutor(max_workers=1) as pool:
        on_duckdb = pool.submit(marts_on_duckdb, data_dir, work, dbt_targets / "duckdb")
        on_spark = marts_on_spark(data_dir, spark_connect, dbt_targets / "spark")
        return request.param, on_duckdb.result(), on_spark


# Rows in the marts: the classic data's customers and orders, and 100 times the generator's base.
EXPECTED_ROWS = {
    "classic": {"customers": 100, "orders": 99},
    "scale 100": {"customers": 10_000, "orders": 9_900},
}


@pytest.mark.parametrize("mart", MARTS)
def test_spark_marts_equal_duckdb_value_for_value(both_engines, mart):
    data_set, on_duckdb, on_spark = both_engines
    assert on_spark.columns[mart] == on_duckdb.columns[mart]
    assert len(on_spark.rows[mart]) == EXPECTED_ROWS[data_set][mart]
    # Decimal("33.00") == Decimal("33.00") and date == date: the types agree, not only the text.
    assert on_spark.rows[mart] == on_duckdb.rows[mart]
