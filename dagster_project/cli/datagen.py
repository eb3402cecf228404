"""Jaffle shop data at any scale, in the classic raw_*.csv schema of data/sample/.

DuckDB generates and writes every table in SQL, so ten million customers take seconds,
not the minutes a Python loop would. Each random choice is `hash(seed, column, id)`:
a pure function of its row, which makes the files byte-identical for a given seed
however DuckDB schedules its threads.

    python -m dagster_project.cli.datagen --scale 100 --out data/scale-100 [--seed 0] [--daily]

The --out folder gets raw_customers.csv, raw_orders.csv and raw_payments.csv. With --daily, orders
and payments come as a shop's daily extracts would, one file per day of order_date:

    raw_customers.csv               as without --daily
    raw_orders/YYYY-MM-DD.csv       the orders placed that day
    raw_payments/YYYY-MM-DD.csv     the payments of those orders

A day without orders has no files. The rows are those of the single files, with the same header
and format, sorted by id in each file. Each run first removes the orders and payments files of an
earlier run, in either layout, so the folder never holds both.
"""

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb

from dagster_project.defs.ingest.accepted_values import ORDER_STATUSES, PAYMENT_METHODS

# Per unit of scale, as in the bundled sample.
CUSTOMERS, ORDERS, PAYMENTS = 100, 99, 113

FIRST_NAMES = [
    "Aaron",
    "Adam",
    "Alan",
    "Amanda",
    "Amy",
    "Andrea",
    "Anna",
    "Anne",
    "Arthur",
    "Barbara",
    "Benjamin",
    "Billy",
    "Brenda",
    "Christina",
    "David",
    "Dennis",
    "Diana",
    "Edward",
    "Elizabeth",
    "Frances",
    "Frank",
    "Fred",
    "Gerald",
    "Gloria",
    "Gregory",
    "Harold",
    "Harry",
    "Helen",
    "Henry",
    "Howard",
    "Jack",
    "Jacqueline",
    "Jane",
    "Janet",
    "Jason",
    "Jean",
    "Jennifer",
    "Jesse",
    "Jimmy",
    "Johnny",
    "Joshua",
    "Judy",
    "Katherine",
    "Kathleen",
    "Kathryn",
    "Kelly",
    "Kimberly",
    "Laura",
    "Lillian",
    "Lisa",
    "Louise",
    "Margaret",
    "Maria",
    "Marie",
    "Martin",
    "Mary",
    "Michael",
    "Mildred",
    "Nicholas",
    "Nicole",
    "Norma",
    "Paul",
    "Phillip",
    "Rose",
    "Sara",
    "Sarah",
    "Scott",
    "Sean",
    "Shawn",
    "Shirley",
    "Steve",
    "Teresa",
    "Theresa",
    "Thomas",
    "Timothy",
    "Todd",
    "Victor",
    "Virginia",
    "Willie",
]

RAW_CUSTOMERS = """
    select
        id,
        $first_names[1 + draw('first_name', id, len($first_names))] as first_name,
        chr((65 + draw('last_name', id, 26))::integer) || '.' as last_name
    from ids where id <= $customers
"""

# Orders are numbered in date order over two years, as a shop's order ids are. The newest
# are still placed or shipped; returns come from older orders.
# Uniform user_ids give each customer Poisson(0.99) orders: about 37% have none.
RAW_ORDERS = """
    select
        id,
        1 + draw('user_id', id, $customers) as user_id,
        date '2018-01-01' + ((id - 1) * 730 // $orders)::integer as order_date,
        case
            when {newest} then {newest_status}
            else {older_status}
        end as status
    from ids where id <= $orders
"""

# Every order gets one payment; the remaining ones go to random orders, so about one
# order in eight is paid in several parts. Amounts are in cents up to $30, as in the sample,
# and most are not whole dollars.
RAW_PAYMENTS = """
    select
        id,
        case when id <= $orders then id else 1 + draw('order_id', id, $orders) end as order_id,
        {payment_method} as payment_method,
        draw('amount', id, 3001) as amount
    from ids where id <= $payments
"""

# Percentages follow the sample. The names are the dbt project's accepted values
# (accepted_values.py); each needs a percentage here.
NEWEST_STATUS_PERCENT = {"placed": 7, "shipped": 8}  # of all orders, newest first
OLDER_STATUS_PERCENT = {"returned": 4, "return_pending": 2, "completed": 94}  # of the older orders
PAYMENT_METHOD_PERCENT = {"credit_card": 49, "bank_transfer": 29, "coupon": 11, "gift_card": 11}

# The same CSV for the single files and the day files: a header, commas, DuckDB's quoting (none for
# these values), ISO dates and \n line ends.
CSV_OPTIONS = "format csv, header, delimiter ','"
# What the generator writes besides raw_customers.csv, in either layout; a run removes them first.
ORDERS_AND_PAYMENTS = ("raw_orders.csv", "raw_payments.csv", "raw_orders", "raw_payments")


def raw_orders_query() -> str:
    statuses = NEWEST_STATUS_PERCENT | OLDER_STATUS_PERCENT
    check_percentages(statuses, ORDER_STATUSES, "order_statuses")
    # Percent of the way from the newest order back to the oldest, in [0, 100).
    recency = "($orders - id) * 100 // $orders"
    return RAW_ORDERS.format(
        newest=f"{recency} < {sum(NEWEST_STATUS_PERCENT.values())}",
        newest_status=pick(recency, NEWEST_STATUS_PERCENT),
        older_status=pick("draw('status', id, 100)", OLDER_STATUS_PERCENT),
    )


def raw_payments_query() -> str:
    check_percentages(PAYMENT_METHOD_PERCENT, PAYMENT_METHODS, "payment_methods")
    return RAW_PAYMENTS.format(payment_method=pick("draw('payment_method', id, 100)", PAYMENT_METHOD_PERCENT))


def pick(percentile: str, percent: dict[str, int]) -> str:
    """SQL naming a row's value: the first whose running total of `percent` exceeds `percentile`."""
    cases, total = [], 0
    for name, share in percent.items():
        total += share
        quoted = name.replace("'", "''")
        cases.append(f"when {percentile} < {total} then '{quoted}'")
    return f"case {' '.join(cases)} end"


def check_percentages(percent: dict[str, int], accepted: tuple[str, ...], var: str) -> None:
    if set(percent) != set(accepted):
        raise ValueError(
            f"The dbt var {var} in jaffle_shop/dbt_project.yml lists {', '.join(accepted)}, but "
            f"dagster_project/cli/datagen.py has percentages for {', '.join(percent)}: "
            "give each accepted value a percentage there, and none other."
        )


def generate(scale: int, out: Path, seed: int = 0, *, daily: bool = False) -> dict[str, int]:
    """Write raw_customers.csv, raw_orders.csv and raw_payments.csv into `out`; return row counts.

    With `daily`, orders and payments go into raw_orders/ and raw_payments/, a file per day of
    order_date (see the module's docstring). Either way, the row counts are those of the tables.
    """
    out.mkdir(parents=True, exist_ok=True)
    remove_orders_and_payments(out)
    params = {
        "customers": CUSTOMERS * scale,
        "orders": ORDERS * scale,
        "payments": PAYMENTS * scale,
        "first_names": FIRST_NAMES,
    }
    # DuckDB draws its progress bar on stdout, even when stdout is a file or a pipe.
    on_terminal = sys.stdout.isatty()
    orders, payments = raw_orders_query(), raw_payments_query()
    tables = {"raw_customers": RAW_CUSTOMERS, "raw_orders": orders, "raw_payments": payments}
    if daily:
        # The day whose file a row goes into: its order's date.
        tables |= {
            "raw_orders": f"select *, order_date as day from ({orders})",
            "raw_payments": f"select payments.*, orders.order_date as day from ({payments}) as payments "
            f"join ({orders}) as orders on payments.order_id = orders.id",
        }
    counts = {}
    with duckdb.connect() as con:
        con.execute(f"set enable_progress_bar = {on_terminal}")
        # draw(column, id, n): this row's pseudo-random integer in [0, n) for that column.
        # n is cast to hash()'s ubigint: ubigint % bigint would run in hugeint, 100 times slower.
        con.execute(f"create macro draw(col, id, n) as (hash({int(seed)}, col, id) % n::ubigint)::bigint")
        # The ids come from a table, not straight from range(): DuckDB scans a table on every
        # core but runs range() on one, and that halves the time to write the files.
        # Payments is the longest table; the others take the first ids.
        con.execute("create table ids as select range as id from range(1, ? + 1)", [params["payments"]])
        for table, query in tables.items():
            by_day = daily and table != "raw_customers"
            path = out / table if by_day else out / f"{table}.csv"
            if on_terminal:
                print(f"Writing {path}{'/YYYY-MM-DD.csv' if by_day else ''}")
            used = {k: v for k, v in params.items() if f"${k}" in query}  # DuckDB rejects unused ones.
            if by_day:
                counts[table] = write_by_day(con, query, used, path)
            else:
                copy = f"copy ({query}) to $path ({CSV_OPTIONS})"
                counts[table] = con.execute(copy, {**used, "path": str(path)}).fetchone()[0]
    return counts


def write_by_day(con: duckdb.DuckDBPyConnection, query: str, params: dict, folder: Path) -> int:
    """Write `query`'s rows into `folder`/YYYY-MM-DD.csv by its `day` column, a file per day, in one
    pass over the table; return the number of rows.

    DuckDB's partitioned COPY writes day=YYYY-MM-DD/data_0.csv folders, which are renamed into place.
    Its threads would interleave a day's rows: ORDER_BY sorts each file by id, as the single files are.
    The day column only names the file: DuckDB leaves a partition column out of the rows.
    """
    with tempfile.TemporaryDirectory(prefix=".datagen-", dir=folder.parent) as temporary:
        partitioned, days = Path(temporary) / "partitioned", Path(temporary) / "days"
        copy = f"copy ({query}) to $path ({CSV_OPTIONS}, partition_by (day), order_by (id))"
        rows = con.execute(copy, {**params, "path": str(partitioned)}).fetchone()[0]
        days.mkdir()
        for partition in partitioned.iterdir():
            day = re.fullmatch(r"day=(\d{4}-\d{2}-\d{2})", partition.name)
            files = list(partition.iterdir())
            if day is None or len(files) != 1:
                # A DuckDB that wrote a day in several files (or named it otherwise) would need
                # them joined in id order here, not one of them taken.
                raise RuntimeError(f"Expected {partition}/ to be day=YYYY-MM-DD/ with one file, not {files}")
            files[0].rename(days / f"{day[1]}.csv")
        days.rename(folder)
    return rows


def remove_orders_and_payments(out: Path) -> None:
    """Remove the orders and payments files of an earlier run, single files or day folders."""
    for name in ORDERS_AND_PAYMENTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dagster_project.cli.datagen",
        description=__doc__.split("\n\n")[0],
        # The docstring's files and layouts, laid out as there.
        epilog=__doc__[__doc__.index("The --out folder") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scale", type=positive_int, required=True, help="1 is the sample size: 100 customers"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSV files")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default: 0)")
    parser.add_argument(
        "--daily",
        action="store_true",
        help="orders and payments in a file per day of order_date (a payment on its order's day), "
        "in the folders raw_orders/ and raw_payments/: see below",
    )
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a directory for the CSV files")
    counts = generate(args.scale, args.out, args.seed, daily=args.daily)
    print(", ".join(f"{rows:,} {table}" for table, rows in counts.items()), f"in {args.out}")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text}")
    return value


if __name__ == "__main__":
    main()
