"""The input contract, file by file, on DuckDB: each file's verdict, values and message.

One level down: each file is loaded by the engine's ``load_csv`` into a version of its own, as
the raw step does. Spark must give every file the same verdict (test_spark_input_contract.py).
End to end, each refused file publishing nothing (published tables, chart, catalog unchanged) is
in test_bad_data.py, on DuckDB; test_spark_warehouse.py has one on Spark.
"""

import duckdb
import pytest

from dagster_project.warehouse.duckdb import DuckDBSession
from tests.input_contract_cases import CASES, run_case


# Each test loads its own file: a verdict computed once for the module would be checked, under
# `make mutants`, only by the test that happened to compute it (docs/testing.md).
@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_duckdb_gives_each_file_its_verdict(tmp_path, case):
    _, table, _, expected = case
    with duckdb.connect(str(tmp_path / "contract.duckdb")) as conn:
        outcome = run_case(DuckDBSession(conn), tmp_path, case)
    if expected is None:
        assert outcome[0] == "loaded", outcome[1]
    else:
        assert outcome[0] == "refused", outcome[1]
        assert expected in outcome[1]
        assert f"{table}.csv" in outcome[1]


def test_there_are_at_least_thirty_files_good_and_bad():
    assert len(CASES) >= 30
    assert {expected is None for *_, expected in CASES} == {True, False}
