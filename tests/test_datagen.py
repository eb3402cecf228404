"""The data generator writes jaffle shop CSVs that pass the dbt tests, at any scale."""

import re

import duckdb
import pytest

from dagster_project.cli import datagen
from dagster_project.cli.datagen import generate, main
from dagster_project.defs.ingest.accepted_values import ORDER_STATUSES, PAYMENT_METHODS


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


def data_rows(path):
    """A CSV file's header and rows, as bytes, each without its line end."""
    content = path.read_bytes()
    assert content.endswith(b"\n"), path
    header, *rows = content[:-1].split(b"\n")
    return header, rows


def row_id(row):
    return int(row.split(b",", 1)[0])


def day_files(out, table):
    """{YYYY-MM-DD: rows} of one of the --daily folders, and the set of their headers."""
    files, headers = {}, set()
    for path in (out / table).iterdir():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.csv", path.name), path.name
        header, files[path.stem] = data_rows(path)
        headers.add(header)
    return files, headers


def test_daily_files_together_hold_exactly_the_rows_and_header_of_the_single_files(tmp_path):
    generate(2, tmp_path / "single", seed=3)
    generate(2, tmp_path / "daily", seed=3, daily=True)

    for table in ("raw_orders", "raw_payments"):
        single_header, single_rows = data_rows(tmp_path / "single" / f"{table}.csv")
        files, headers = day_files(tmp_path / "daily", table)
        assert headers == {single_header}, table
        daily_rows = sorted((row for rows in files.values() for row in rows), key=row_id)
        assert daily_rows == single_rows, table
    customers = "raw_customers.csv"
    assert (tmp_path / "daily" / customers).read_bytes() == (tmp_path / "single" / customers).read_bytes()


def test_daily_returns_the_same_row_counts(tmp_path):
    assert generate(2, tmp_path / "daily", daily=True) == generate(2, tmp_path / "single")


def test_each_day_file_is_sorted_by_id(tmp_path):
    # DuckDB's threads interleave a day's rows unless told to sort them; scale 2 is too small for that.
    generate(10, tmp_path, daily=True)

    for table in ("raw_orders", "raw_payments"):
        for day, rows in day_files(tmp_path, table)[0].items():
            ids = [row_id(row) for row in rows]
            assert ids == sorted(ids), f"{table}/{day}.csv"


def test_every_order_in_a_day_file_was_placed_that_day_and_only_days_with_orders_have_a_file(tmp_path):
    generate(2, tmp_path / "single")
    generate(2, tmp_path / "daily", daily=True)
    files, _ = day_files(tmp_path / "daily", "raw_orders")

    for day, rows in files.items():
        assert {row.split(b",")[2].decode() for row in rows} == {day}
    order_dates = {
        row.split(b",")[2].decode() for row in data_rows(tmp_path / "single" / "raw_orders.csv")[1]
    }
    assert set(files) == order_dates
    assert len(order_dates) < 730  # 198 orders over two years: most days have none.


def test_every_payment_in_a_day_file_is_for_an_order_of_that_day(tmp_path):
    generate(2, tmp_path, daily=True)
    orders, _ = day_files(tmp_path, "raw_orders")
    payments, _ = day_files(tmp_path, "raw_payments")
    order_day = {row_id(row): day for day, rows in orders.items() for row in rows}

    for day, rows in payments.items():
        assert rows, day
        assert {order_day[int(row.split(b",")[1])] for row in rows} == {day}


def test_the_same_seed_writes_identical_daily_files(tmp_path):
    generate(2, tmp_path / "a", seed=7, daily=True)
    generate(2, tmp_path / "b", seed=7, daily=True)

    def files(out):
        return {str(path.relative_to(out)): path.read_bytes() for path in out.rglob("*") if path.is_file()}

    a = files(tmp_path / "a")
    assert len(a) > 100
    assert a == files(tmp_path / "b")


def test_a_run_leaves_one_layout_in_a_folder_that_holds_the_other_and_keeps_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")

    def layout():
        return sorted(path.name for path in tmp_path.iterdir())

    generate(1, tmp_path)
    generate(1, tmp_path, daily=True)
    assert layout() == ["notes.txt", "raw_customers.csv", "raw_orders", "raw_payments"]
    generate(1, tmp_path)
    assert layout() == ["notes.txt", "raw_customers.csv", "raw_orders.csv", "raw_payments.csv"]
    generate(1, tmp_path, daily=True)
    generate(2, tmp_path, daily=True)
    assert layout() == ["notes.txt", "raw_customers.csv", "raw_orders", "raw_payments"]
    # The second daily run replaced the first's day files: scale 2 has orders on days scale 1 has not.
    assert sum(len(data_rows(path)[1]) for path in (tmp_path / "raw_orders").iterdir()) == 198
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_command_line_writes_day_files_with_daily(tmp_path, capsys):
    main(["--scale", "1", "--out", str(tmp_path / "data"), "--daily"])

    assert (
        capsys.readouterr().out
        == f"100 raw_customers, 99 raw_orders, 113 raw_payments in {tmp_path / 'data'}\n"
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "raw_customers.csv",
        "raw_orders",
        "raw_payments",
    ]
    assert (tmp_path / "data" / "raw_orders" / "2018-01-01.csv").is_file()


def test_the_help_and_the_docstring_describe_daily_and_its_layout(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())

    for text in (help_text, datagen.__doc__):
        assert "--daily" in text
        assert "raw_orders/YYYY-MM-DD.csv" in text
        assert "raw_payments/YYYY-MM-DD.csv" in text
