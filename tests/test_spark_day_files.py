"""Day files on Spark: the same rows, and the same refusal, as on DuckDB.

Its own module because every module that needs a Spark server runs on one pytest-xdist worker,
which starts the session's one server (tests/conftest.py).
"""

import shutil

import duckdb
import pytest

from dagster_project.settings import SAMPLE_DATA_DIR
from dagster_project.warehouse.duckdb import DuckDBSession
from dagster_project.warehouse.spark import SparkWarehouse
from tests.helpers import reorder_columns, replace_file, split_by_day
from tests.input_contract_cases import verdict

pytestmark = pytest.mark.spark


def test_day_files_on_spark_load_and_refuse_as_on_duckdb(spark_connect, tmp_path):
    shutil.copytree(SAMPLE_DATA_DIR, data := tmp_path / "data")
    days = split_by_day(data)
    reorder_columns(data / days["raw_payments"][2])
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    bad_day = bad / days["raw_orders"][3]
    replace_file(bad_day, bad_day.read_text(encoding="utf-8") + "999,1,2018-13-01,placed\n")
    cases = [("raw_orders", data, days["raw_orders"]), ("raw_payments", data, days["raw_payments"])]
    cases.append(("raw_orders", bad, days["raw_orders"]))

    with duckdb.connect(str(tmp_path / "days.duckdb")) as conn:
        session = DuckDBSession(conn)
        on_duckdb = [
            verdict(session, table, [folder / name for name in names]) for table, folder, names in cases
        ]
    warehouse = SparkWarehouse(remote=spark_connect, lease_file=str(tmp_path / "spark.run-lease"))
    try:
        with warehouse.session() as session:
            session.ensure_databases()
            on_spark = [
                verdict(session, table, [folder / name for name in names]) for table, folder, names in cases
            ]
    finally:
        warehouse.close()

    assert [verdict for verdict, _ in on_duckdb] == ["loaded", "loaded", "refused"]
    assert len(on_duckdb[1][1]) == 113  # every payment, the reordered day's included
    assert str(bad_day) in on_duckdb[2][1]
    assert on_spark == on_duckdb
