"""Materialize all on the bundled sample data: what a user sees after one click."""

import re
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_asset_is_materialized(sample_run):
    assert sample_run.result.success
    materialized = {
        event.asset_key.to_user_string() for event in sample_run.result.get_asset_materialization_events()
    }
    assert materialized == {
        "raw_customers",
        "raw_orders",
        "raw_payments",
        "stg_customers",
        "stg_orders",
        "stg_payments",
        "customers",
        "orders",
        "order_count_chart",
    }


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


@pytest.mark.parametrize("table", ["customers", "orders"])
def test_marts_equal_the_classic_jaffle_shop_value_for_value(sample_run, table):
    expected = pd.read_csv(FIXTURES / f"classic_{table}.csv")
    with sample_run.env.warehouse().get_connection(read_only=True) as conn:
        actual = conn.execute(f"select * from {table} order by 1").df()
    for column in ("first_order", "most_recent_order", "order_date"):
        if column in actual:
            actual[column] = actual[column].dt.strftime("%Y-%m-%d")
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)


def test_a_known_customer_has_the_classic_values(sample_run):
    row = sample_run.env.query(
        "select first_name, last_name, number_of_orders, customer_lifetime_value, "
        "strftime(first_order, '%Y-%m-%d'), strftime(most_recent_order, '%Y-%m-%d') "
        "from customers where customer_id = 1"
    )
    assert row == [("Michael", "P.", 2, 33.0, "2018-01-01", "2018-02-10")]


def test_every_dbt_test_ran_as_a_passing_asset_check(sample_run):
    evaluations = sample_run.result.get_asset_check_evaluations()
    dbt_checks = {
        e.check_name
        for e in evaluations
        if e.asset_key.to_user_string()
        in {"stg_customers", "stg_orders", "stg_payments", "customers", "orders"}
    }
    assert len(dbt_checks) == 21
    assert {
        "unique_customers_customer_id",
        "relationships_orders_customer_id__customer_id__ref_customers_",
    } <= dbt_checks
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]


def test_dbt_models_carry_row_counts_and_column_types(sample_run):
    event = sample_run.instance.get_latest_materialization_event(AssetKey("customers"))
    metadata = event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 100
    types = {c.name: c.type for c in metadata["dagster/column_schema"].schema.columns}
    assert types["number_of_orders"] == "BIGINT"
    assert types["customer_lifetime_value"] == "DOUBLE"


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
