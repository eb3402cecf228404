"""Materialize all on the bundled sample data: what a user sees after one click.

The comparison with the classic jaffle shop runs on dbt-labs' classic data (``classic_run``).
"""

import csv
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import AssetKey

from dagster_project.defs.ingest.accepted_values import PAYMENT_METHODS
from tests.helpers import PROJECT_ASSETS

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_asset_is_materialized(sample_run):
    assert sample_run.result.success
    materialized = {
        event.asset_key.to_user_string() for event in sample_run.result.get_asset_materialization_events()
    }
    assert materialized == set(PROJECT_ASSETS)


def test_raw_tables_hold_every_row_of_the_sample_files(sample_run):
    counts = {
        table: sample_run.env.query(f"select count(*) from {table}")[0][0]
        for table in ("raw_customers", "raw_orders", "raw_payments")
    }
    assert counts == {"raw_customers": 100, "raw_orders": 99, "raw_payments": 113}


def test_raw_assets_report_row_count_schema_and_source_file(sample_run):
    event = sample_run.instance.get_latest_materialization_event(AssetKey("raw_orders"))
    metadata = event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 99
    columns = [(c.name, c.type) for c in metadata["dagster/column_schema"].schema.columns]
    assert columns == [
        ("id", "INTEGER"),
        ("user_id", "INTEGER"),
        ("order_date", "DATE"),
        ("status", "VARCHAR"),
    ]
    assert metadata["source_file"].value == str(sample_run.env.data_dir / "raw_orders.csv")


def as_written_in(expected: str, actual):
    """The expected CSV cell as the type DuckDB returned, so "33.0" equals Decimal("33.00") exactly."""
    if expected == "":
        return None
    if isinstance(actual, date):
        return date.fromisoformat(expected)
    if isinstance(actual, int | Decimal):
        return type(actual)(expected)
    return expected


@pytest.mark.parametrize("table", ["customers", "orders"])
def test_marts_equal_the_classic_jaffle_shop_value_for_value(classic_run, table):
    with open(FIXTURES / f"classic_{table}.csv", newline="", encoding="utf-8") as file:
        header, *expected_rows = csv.reader(file)
    with classic_run.env.warehouse().get_connection(read_only=True) as conn:
        cursor = conn.execute(f"select * from {table} order by 1")
        actual_rows = cursor.fetchall()
        columns = [column for column, *_ in cursor.description]

    assert columns == header
    expected = [
        tuple(as_written_in(cell, value) for cell, value in zip(row, actual, strict=True))
        for row, actual in zip(expected_rows, actual_rows, strict=True)
    ]
    assert actual_rows == expected


def test_a_known_customer_has_the_classic_values(classic_run):
    row = classic_run.env.query(
        "select first_name, last_name, number_of_orders, customer_lifetime_value, "
        "strftime(first_order, '%Y-%m-%d'), strftime(most_recent_order, '%Y-%m-%d') "
        "from customers where customer_id = 1"
    )
    assert row == [("Michael", "P.", 2, Decimal("33.00"), "2018-01-01", "2018-02-10")]


def test_the_cents_of_the_sample_reach_the_orders_and_the_customers_lifetime_value(sample_run):
    # By hand from data/sample: order 25 is paid by payments 28 (2036 cents, bank transfer),
    # 29 (2273, credit card) and 30 (1610, coupon); in doubles these sum to 59.190000000000005.
    # Its customer, 51, also placed orders 38 (payment 43: 1591) and 50 (payment 56: 2672).
    order = sample_run.env.query(
        "select credit_card_amount, coupon_amount, bank_transfer_amount, gift_card_amount, amount "
        "from orders where order_id = 25"
    )
    customer = sample_run.env.query("select customer_lifetime_value from customers where customer_id = 51")

    assert order == [
        (Decimal("22.73"), Decimal("16.10"), Decimal("20.36"), Decimal("0.00"), Decimal("59.19"))
    ]
    assert customer == [(Decimal("101.82"),)]


def test_every_dbt_test_ran_as_a_passing_asset_check(sample_run):
    evaluations = sample_run.result.get_asset_check_evaluations()
    dbt_checks = {
        e.check_name
        for e in evaluations
        if e.asset_key.to_user_string()
        in {"stg_customers", "stg_orders", "stg_payments", "customers", "orders"}
        # The marts' freshness checks are Dagster's own (tests/test_freshness.py), not dbt tests.
        and e.check_name != "freshness_check"
    }
    assert len(dbt_checks) == 15
    assert {
        "unique_stg_customers_customer_id",
        "not_null_stg_orders_order_id",
        "unique_stg_payments_payment_id",
        "unique_customers_customer_id",
        "relationships_orders_customer_id__customer_id__ref_customers_",
        "accepted_values_orders_status",
    } <= dbt_checks
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]


def test_the_run_log_shows_dbt_run_with_the_duckdb_memory_limit_of_the_settings(sample_run):
    messages = [entry.user_message for entry in sample_run.instance.all_logs(sample_run.result.run_id)]
    (command,) = [message for message in messages if message.startswith("Running dbt command: ")]
    arguments = command.removeprefix("Running dbt command: `").split(" --")
    (given,) = [argument.removeprefix("vars ") for argument in arguments if argument.startswith("vars ")]
    # profiles.yml turns the var into DuckDB's memory_limit (tests/test_memory_limit.py).
    assert json.loads(given).get("duckdb_memory_limit") == sample_run.env.settings.duckdb_memory_limit


def test_dbt_models_carry_row_counts_and_column_types(sample_run):
    event = sample_run.instance.get_latest_materialization_event(AssetKey("customers"))
    metadata = event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 100
    types = {c.name: c.type for c in metadata["dagster/column_schema"].schema.columns}
    assert types["number_of_orders"] == "BIGINT"
    assert types["customer_lifetime_value"] == "DECIMAL(16,2)"


def test_amounts_are_integer_cents_when_raw_and_exact_decimal_dollars_from_staging_on(sample_run):
    amounts = [f"{method}_amount" for method in PAYMENT_METHODS] + ["amount"]
    types = sample_run.env.query(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'main' "
        "and (data_type like 'DECIMAL%' or column_name like '%amount' or column_name like '%value') "
        "order by table_name, ordinal_position"
    )

    assert types == [
        ("customers", "customer_lifetime_value", "DECIMAL(16,2)"),
        *[("orders", column, "DECIMAL(16,2)") for column in amounts],
        ("raw_payments", "amount", "INTEGER"),
        ("stg_payments", "amount", "DECIMAL(16,2)"),
    ]


def test_the_chart_file_holds_the_order_counts_and_no_remote_script(sample_run):
    event = sample_run.instance.get_latest_materialization_event(AssetKey("order_count_chart"))
    metadata = event.asset_materialization.metadata
    path = Path(metadata["path"].value)
    assert path.parent == sample_run.env.chart_dir
    html = path.read_text(encoding="utf-8")
    # The classic data: 38 customers without orders, and nobody with exactly 4.
    expected = [(0, 38), (1, 33), (2, 23), (3, 5), (5, 1)]
    assert metadata["customers"].value == 100
    for orders, count in expected:
        assert f"| {orders} | {count} |" in metadata["counts"].value
    assert '"y":[' + ",".join(str(count) for _, count in expected) + "]" in html
    assert not re.search(r"<script[^>]+src=", html), "the chart must not load a remote script"
    assert "Customers by number of orders" in html
