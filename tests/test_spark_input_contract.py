"""The input contract on Spark: every file gets DuckDB's verdict, values and message.

Its own module because every module that needs a Spark server runs on one pytest-xdist worker,
which starts the session's one server (tests/conftest.py).
"""

import pytest

from dagster_project.warehouse.spark import SparkWarehouse
from tests.input_contract_cases import CASES, duckdb_verdicts, run_case, strip_folder


@pytest.mark.spark
def test_spark_gives_every_file_duckdbs_verdict_values_and_message(spark_connect, tmp_path):
    (duckdb_folder := tmp_path / "duckdb").mkdir()
    on_duckdb_verdicts = duckdb_verdicts(duckdb_folder)
    warehouse = SparkWarehouse(remote=spark_connect, lease_file=str(tmp_path / "spark.run-lease"))
    try:
        with warehouse.session() as session:
            session.ensure_databases()
            different = {}
            for case in CASES:
                on_spark = run_case(session, tmp_path, case)
                # The same file path on both sides: DuckDB's was under another folder.
                on_duckdb = on_duckdb_verdicts[case[0]]
                if on_duckdb[0] == "refused":
                    on_duckdb = ("refused", strip_folder(on_duckdb[1]))
                    on_spark = ("refused", strip_folder(on_spark[1]))
                if on_spark != on_duckdb:
                    different[case[0]] = (on_duckdb, on_spark)
    finally:
        warehouse.close()
    assert different == {}
