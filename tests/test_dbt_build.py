"""A bare `dbt build`, as a dbt user runs it: from jaffle_shop/, with only DUCKDB_DATABASE set,
no Dagster and no vars. It tests every staging key, runs the unit tests and enforces the marts'
contracts, so a mart whose money is not numeric(16, 2) is never built.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from bench.bare import DBT_SCHEMA, load_raw_tables
from dagster_project.settings import DBT_PROJECT_DIR, REPO_ROOT, SAMPLE_DATA_DIR
from tests.helpers import VENV_BIN
from tests.processes import RUN_TIMEOUT

UNIT_TESTS = (
    "cents_become_exact_dollars",
    "lifetime_value_sums_every_payment_of_every_order",
    "each_payment_method_gets_its_own_amount",
    "every_accepted_status_reaches_the_orders_unchanged",
)
KEY_TESTS = tuple(
    f"{test}_{model}_{key}"
    for model, key in (
        ("stg_customers", "customer_id"),
        ("stg_orders", "order_id"),
        ("stg_payments", "payment_id"),
    )
    for test in ("unique", "not_null")
)
USER_UNSET = ("JAFFLE_ENV", "DO_NOT_TRACK", "DBT_SEND_ANONYMOUS_USAGE_STATS")
# What dbt's log says for each anonymous usage event it would send to dbt Labs.
USAGE_EVENT = "Sending event:"
# The loader's memory limit; a bare dbt run gets the profile's default.
LOAD_MEMORY_LIMIT = "1GB"


@dataclass(frozen=True)
class BareBuild:
    returncode: int
    output: str
    # Each node dbt ran, by name ("unique_stg_orders_order_id"), and how it ended ("pass").
    statuses: dict[str, str]
    # Each mart column's type in DuckDB, as the build left it.
    mart_types: dict[tuple[str, str], str]
    database: Path
    target_path: Path


def dbt_build(project_dir: Path, database: Path, target_path: Path) -> subprocess.CompletedProcess:
    # A dbt user's environment: no JAFFLE_ENV, and nothing that turns dbt's usage events off
    # except what the project itself says.
    env = {key: value for key, value in os.environ.items() if key not in USER_UNSET}
    return subprocess.run(
        [
            str(VENV_BIN / "dbt"),
            "build",
            "--profiles-dir",
            str(REPO_ROOT),
            "--target-path",
            str(target_path),
            "--log-path",
            str(target_path),
        ],
        cwd=project_dir,
        env={**env, "DUCKDB_DATABASE": str(database)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def node_name(unique_id: str) -> str:
    """`test.jaffle_shop.unique_x.1a2b3c` is unique_x; `unit_test.jaffle_shop.orders.y` is y."""
    kind, _project, *rest = unique_id.split(".")
    return rest[0] if kind == "test" else rest[-1]


def statuses(target_path: Path) -> dict[str, str]:
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    return {node_name(result["unique_id"]): result["status"] for result in results}


def mart_types(database: Path) -> dict[tuple[str, str], str]:
    with duckdb.connect(str(database), read_only=True) as conn:
        rows = conn.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            f"where table_schema = '{DBT_SCHEMA}' and table_name in ('customers', 'orders')"
        ).fetchall()
    return {(table, column): data_type for table, column, data_type in rows}


@pytest.fixture(scope="module")
def bare_build(tmp_path_factory: pytest.TempPathFactory) -> BareBuild:
    """The raw tables loaded from the sample files, then one bare `dbt build` of the project."""
    work = tmp_path_factory.mktemp("bare_dbt_build")
    database = work / "jaffle.duckdb"
    load_raw_tables(SAMPLE_DATA_DIR, database, LOAD_MEMORY_LIMIT)
    target_path = work / "target"
    process = dbt_build(DBT_PROJECT_DIR, database, target_path)
    return BareBuild(
        process.returncode,
        process.stdout + process.stderr,
        statuses(target_path),
        mart_types(database),
        database,
        target_path,
    )


def test_a_bare_dbt_build_runs_the_unit_tests_and_they_pass(bare_build):
    assert bare_build.returncode == 0, bare_build.output[-3000:]
    assert {name: bare_build.statuses.get(name) for name in UNIT_TESTS} == dict.fromkeys(UNIT_TESTS, "pass")


def test_a_bare_dbt_build_tests_every_staging_key_and_the_order_statuses(bare_build):
    tests = (*KEY_TESTS, "accepted_values_orders_status")
    assert {name: bare_build.statuses.get(name) for name in tests} == dict.fromkeys(tests, "pass")


def test_a_bare_dbt_build_sends_no_usage_events(bare_build):
    # dbt_project.yml's send_anonymous_usage_stats: false (Dagster's dbt steps set it themselves).
    log = (bare_build.target_path / "dbt.log").read_text(encoding="utf-8")
    assert "Running with dbt=" in log
    assert [line for line in log.splitlines() if USAGE_EVENT in line] == []


def test_a_bare_dbt_build_gives_the_marts_their_contract_types(bare_build):
    amounts = ("credit_card_amount", "coupon_amount", "bank_transfer_amount", "gift_card_amount", "amount")
    # The raw tables hold bigint ids (read_csv's guess); the contracts make them integer.
    assert bare_build.mart_types == {
        ("customers", "customer_id"): "INTEGER",
        ("customers", "first_name"): "VARCHAR",
        ("customers", "last_name"): "VARCHAR",
        ("customers", "first_order"): "DATE",
        ("customers", "most_recent_order"): "DATE",
        ("customers", "number_of_orders"): "BIGINT",
        ("customers", "customer_lifetime_value"): "DECIMAL(16,2)",
        ("orders", "order_id"): "INTEGER",
        ("orders", "customer_id"): "INTEGER",
        ("orders", "order_date"): "DATE",
        ("orders", "status"): "VARCHAR",
        **{("orders", amount): "DECIMAL(16,2)" for amount in amounts},
    }


def test_a_mart_whose_money_is_a_double_fails_its_contract_and_is_not_built(bare_build, tmp_path):
    broken = tmp_path / "jaffle_shop"
    shutil.copytree(DBT_PROJECT_DIR, broken, ignore=shutil.ignore_patterns("target", "logs"))
    customers = broken / "models" / "marts" / "customers.sql"
    exact = "cast(sum(payments.amount) as numeric(16, 2))"
    assert exact in customers.read_text()
    customers.write_text(customers.read_text().replace(exact, "cast(sum(payments.amount) as double)"))
    # The same profile and database as the good build, so dbt re-parses only the changed model.
    target_path = tmp_path / "target"
    target_path.mkdir()
    shutil.copy(bare_build.target_path / "partial_parse.msgpack", target_path)

    process = dbt_build(broken, bare_build.database, target_path)

    output = process.stdout + process.stderr
    assert process.returncode == 1, output[-3000:]
    assert "This model has an enforced contract that failed." in output, output[-3000:]
    assert "| customer_lifetime_value | DOUBLE          | DECIMAL(16,2) | data type mismatch |" in output
    assert statuses(target_path)["customers"] == "error"
    assert mart_types(bare_build.database)[("customers", "customer_lifetime_value")] == "DECIMAL(16,2)"
