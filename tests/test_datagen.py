"""The data generator writes jaffle shop CSVs that pass the dbt tests, at any scale."""

import re

import duckdb
import pytest

from dagster_project.accepted_values import ORDER_STATUSES, PAYMENT_METHODS
from dagster_project.cli import datagen
from dagster_project.cli.datagen import generate, main


def load(out):
    """An in-memory DuckDB with the three generated tables, typed as the dbt project sees them."""
    con = duckdb.connect()
    for table in ("raw_customers", "raw_orders", "raw_payments"):
        con.execute(f"create table {table} as select * from read_csv('{out / table}.csv')")
    return con


def test_scale_one_is_the_size_of_the_bundled_sample(tmp_path):
    counts = generate(1, tmp_path)

    assert counts == {"raw_customers": 100, "raw_orders": 99, "raw_payments": 113}
    for table, rows in counts.items():
        assert len((tmp_path / f"{table}.csv").read_text().splitlines()) == rows + 1


def test_scale_multiplies_every_table(tmp_path):
    assert generate(3, tmp_path) == {"raw_customers": 300, "raw_orders": 297, "raw_payments": 339}


def test_headers_are_the_classic_jaffle_shop_schema(tmp_path):
    generate(1, tmp_path)

    def header(table):
        return (tmp_path / f"{table}.csv").read_text().splitlines()[0]

    assert header("raw_customers") == "id,first_name,last_name"
    assert header("raw_orders") == "id,user_id,order_date,status"
    assert header("raw_payments") == "id,order_id,payment_method,amount"


def test_values_are_written_like_the_sample_unquoted_with_iso_dates_and_integer_cents(tmp_path):
    generate(1, tmp_path)
    row_formats = {
        "raw_customers": r"\d+,[A-Z][a-z]+,[A-Z]\.",
        "raw_orders": r"\d+,\d+,\d{4}-\d{2}-\d{2},[a-z_]+",
        "raw_payments": r"\d+,\d+,[a-z_]+,\d+",
    }

    for table, row_format in row_formats.items():
        rows = (tmp_path / f"{table}.csv").read_text().splitlines()[1:]
        assert all(re.fullmatch(row_format, row) for row in rows), table


def test_the_same_seed_writes_identical_bytes(tmp_path):
    generate(2, tmp_path / "a", seed=7)
    generate(2, tmp_path / "b", seed=7)

    for name in ("raw_customers.csv", "raw_orders.csv", "raw_payments.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_different_seed_writes_different_data(tmp_path):
    generate(1, tmp_path / "a", seed=1)
    generate(1, tmp_path / "b", seed=2)

    for name in ("raw_customers.csv", "raw_orders.csv", "raw_payments.csv"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_every_status_and_payment_method_appears_in_the_default_sample_sized_data(tmp_path):
    # Rare values (2% of orders are return_pending) can miss 99 orders for some seeds, not seed 0.
    generate(1, tmp_path)
    con = load(tmp_path)

    def distinct(column, table):
        return {value for (value,) in con.execute(f"select distinct {column} from {table}").fetchall()}

    assert distinct("status", "raw_orders") == set(ORDER_STATUSES)
    assert distinct("payment_method", "raw_payments") == set(PAYMENT_METHODS)


def test_an_accepted_value_without_a_percentage_is_refused_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr(datagen, "PAYMENT_METHODS", (*PAYMENT_METHODS, "voucher"))

    with pytest.raises(ValueError, match="percentages for") as error:
        generate(1, tmp_path)

    assert str(error.value) == (
        "The dbt var payment_methods in jaffle_shop/dbt_project.yml lists "
        "credit_card, coupon, bank_transfer, gift_card, voucher, but dagster_project/cli/datagen.py "
        "has percentages for credit_card, bank_transfer, coupon, gift_card: "
        "give each accepted value a percentage there, and none other."
    )


def test_amounts_are_integer_cents_up_to_thirty_dollars_and_mostly_not_whole_dollars(tmp_path):
    generate(1, tmp_path)
    cents = [amount for (amount,) in load(tmp_path).execute("select amount from raw_payments").fetchall()]

    assert min(cents) >= 0
    assert max(cents) <= 3000
    assert sum(amount % 100 != 0 for amount in cents) > 0.9 * len(cents)


def test_customers_order_zero_to_five_or_more_times_and_about_a_third_never_order(tmp_path):
    generate(100, tmp_path)
    never, five_or_more = (
        load(tmp_path)
        .execute(
            "select avg((orders = 0)::int), sum((orders >= 5)::int) from ("
            "select count(o.id) as orders from raw_customers c left join raw_orders o on o.user_id = c.id "
            "group by c.id)"
        )
        .fetchone()
    )
    assert 0.28 < never < 0.40
    assert five_or_more > 0


def test_some_orders_are_paid_in_several_payments(tmp_path):
    generate(1, tmp_path)
    several = load(tmp_path).execute(
        "select count(*) from (select order_id from raw_payments group by 1 having count(*) > 1)"
    )

    assert several.fetchone()[0] > 0


def test_orders_span_about_two_years(tmp_path):
    generate(1, tmp_path)
    days = load(tmp_path).execute("select max(order_date) - min(order_date) from raw_orders").fetchone()[0]

    assert 700 <= days <= 730


def test_ids_are_unique_and_every_reference_points_at_an_existing_row(tmp_path):
    generate(5, tmp_path)
    con = load(tmp_path)

    for table in ("raw_customers", "raw_orders", "raw_payments"):
        assert con.execute(f"select count(*) = count(distinct id) from {table}").fetchone()[0], table
    assert (
        con.execute(
            "select count(*) from raw_orders where user_id not in (select id from raw_customers)"
        ).fetchone()[0]
        == 0
    )
    assert (
        con.execute(
            "select count(*) from raw_payments where order_id not in (select id from raw_orders)"
        ).fetchone()[0]
        == 0
    )


def test_a_scale_below_one_is_refused_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--scale", "0", "--out", str(tmp_path)])

    assert "--scale: must be a whole number of 1 or more, not 0" in capsys.readouterr().err


def test_an_out_path_that_is_a_file_is_refused_with_a_message(tmp_path, capsys):
    existing_file = tmp_path / "raw_orders.csv"
    existing_file.write_text("")

    with pytest.raises(SystemExit):
        main(["--scale", "1", "--out", str(existing_file)])

    assert f"--out {existing_file} is a file" in capsys.readouterr().err


def test_the_command_line_writes_the_files_and_says_how_many_rows(tmp_path, capsys):
    main(["--scale", "1", "--out", str(tmp_path / "data")])

    assert (
        capsys.readouterr().out
        == f"100 raw_customers, 99 raw_orders, 113 raw_payments in {tmp_path / 'data'}\n"
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "raw_customers.csv",
        "raw_orders.csv",
        "raw_payments.csv",
    ]
