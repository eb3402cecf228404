"""The input contract's cases: files good and bad, and what each engine's loader makes of one.

Shared by the DuckDB cases (test_input_contract.py) and the Spark ones (test_spark_input_contract.py).
"""

from pathlib import Path

import duckdb

from dagster_project.defs.ingest.csv_errors import RawFileError
from dagster_project.defs.ingest.input_contract import EXPECTED
from dagster_project.defs.ingest.tables import RAW_TABLES
from dagster_project.warehouse import BUILD_SCHEMA
from dagster_project.warehouse.duckdb import DuckDBSession

TABLES = {table.name: table for table in RAW_TABLES}
CUSTOMERS, ORDERS, PAYMENTS = (
    b"id,first_name,last_name\n",
    b"id,user_id,order_date,status\n",
    b"id,order_id,payment_method,amount\n",
)
INTEGER, DATE = EXPECTED["INTEGER"], EXPECTED["DATE"]
VERSION = f"contract__{'0' * 32}"

# (id, table, file, None when accepted, else what the message says after "{path}, ").
CASES = [
    ("customers", "raw_customers", CUSTOMERS + b"1,Ann,B.\n2,Bob,C.\n", None),
    ("crlf", "raw_customers", CUSTOMERS.replace(b"\n", b"\r\n") + b"1,Ann,B.\r\n", None),
    ("bom", "raw_customers", b"\xef\xbb\xbf" + CUSTOMERS + b"1,Zo\xc3\xab,B.\n", None),
    ("quoted_comma", "raw_customers", CUSTOMERS + b'1,"Ann, Jr.",B.\n', None),
    ("quoted_newline", "raw_customers", CUSTOMERS + b'1,"Ann\nMarie",B.\n', None),
    # As a spreadsheet exports it: CR LF between records, LF alone inside a value.
    (
        "spreadsheet_newline",
        "raw_customers",
        CUSTOMERS.replace(b"\n", b"\r\n") + b'1,"Ann\nMarie",B.\r\n2,Bob,C.\r\n',
        None,
    ),
    ("doubled_quote", "raw_customers", CUSTOMERS + b'1,"Ann ""A""",B.\n', None),
    ("extra_column", "raw_customers", b"id,first_name,last_name,email\n1,Ann,B.,a@b\n", None),
    ("columns_reordered", "raw_customers", b"last_name,id,first_name\nB.,1,Ann\n", None),
    ("negative_id", "raw_customers", CUSTOMERS + b"-1,Ann,B.\n", None),
    ("empty_name", "raw_customers", CUSTOMERS + b"1,,B.\n", None),
    ("orders", "raw_orders", ORDERS + b"1,1,2018-01-01,placed\n", None),
    ("leap_day", "raw_orders", ORDERS + b"1,1,2020-02-29,placed\n", None),
    ("cents", "raw_payments", PAYMENTS + b"1,1,coupon,2161\n2,1,coupon,0\n", None),
    (
        "letters_in_id",
        "raw_customers",
        CUSTOMERS + b"1,Ann,B.\nabc,Bob,C.\n",
        f"line 3: column 1 (id) holds 'abc', which is not {INTEGER}.",
    ),
    (
        "half_cent",
        "raw_payments",
        PAYMENTS + b"1,1,coupon,1634.5\n",
        f"line 2: column 4 (amount) holds '1634.5', which is not {INTEGER}.",
    ),
    (
        "dollars",
        "raw_payments",
        PAYMENTS + b"1,1,coupon,21.61\n",
        f"line 2: column 4 (amount) holds '21.61', which is not {INTEGER}.",
    ),
    (
        "exponent",
        "raw_payments",
        PAYMENTS + b"1,1,coupon,1e3\n",
        f"line 2: column 4 (amount) holds '1e3', which is not {INTEGER}.",
    ),
    (
        "plus_sign",
        "raw_payments",
        PAYMENTS + b"1,1,coupon,+5\n",
        f"line 2: column 4 (amount) holds '+5', which is not {INTEGER}.",
    ),
    (
        "leading_space",
        "raw_payments",
        PAYMENTS + b"1, 1,coupon,100\n",
        f"line 2: column 2 (order_id) holds ' 1', which is not {INTEGER}.",
    ),
    (
        "trailing_space",
        "raw_payments",
        PAYMENTS + b"1,1 ,coupon,100\n",
        f"line 2: column 2 (order_id) holds '1 ', which is not {INTEGER}.",
    ),
    (
        "thousands",
        "raw_payments",
        PAYMENTS + b'1,1,coupon,"1,000"\n',
        f"line 2: column 4 (amount) holds '1,000', which is not {INTEGER}.",
    ),
    (
        "too_big",
        "raw_payments",
        PAYMENTS + b"1,1,coupon,99999999999\n",
        f"line 2: column 4 (amount) holds '99999999999', which is not {INTEGER}.",
    ),
    (
        "two_digit_year",
        "raw_orders",
        ORDERS + b"1,1,18-03-02,placed\n",
        f"line 2: column 3 (order_date) holds '18-03-02', which is not {DATE}.",
    ),
    (
        "year_18",
        "raw_orders",
        ORDERS + b"1,1,0018-03-02,placed\n",
        f"line 2: column 3 (order_date) holds '0018-03-02', which is not {DATE}.",
    ),
    (
        "unpadded",
        "raw_orders",
        ORDERS + b"1,1,2018-1-25,placed\n",
        f"line 2: column 3 (order_date) holds '2018-1-25', which is not {DATE}.",
    ),
    (
        "no_such_day",
        "raw_orders",
        ORDERS + b"1,1,2018-02-30,placed\n",
        f"line 2: column 3 (order_date) holds '2018-02-30', which is not {DATE}.",
    ),
    (
        "slashes",
        "raw_orders",
        ORDERS + b"1,1,2018/01/25,placed\n",
        f"line 2: column 3 (order_date) holds '2018/01/25', which is not {DATE}.",
    ),
    (
        "timestamp",
        "raw_orders",
        ORDERS + b"1,1,2018-01-25 10:00:00,placed\n",
        f"line 2: column 3 (order_date) holds '2018-01-25 10:00:00', which is not {DATE}.",
    ),
    (
        "after_quoted_newline",
        "raw_customers",
        CUSTOMERS + b'1,"Ann\nMarie",B.\nx,Eve,D.\n',
        f"line 4: column 1 (id) holds 'x', which is not {INTEGER}.",
    ),
    (
        "empty_row",
        "raw_orders",
        ORDERS + b"1,1,2018-01-01,placed\n,,,\n",
        "line 3: the row is empty (',,,').",
    ),
    (
        "too_many_fields",
        "raw_customers",
        CUSTOMERS + b"1,Ann,B.,x\n",
        "line 2: the row has 4 fields, but the header has 3.",
    ),
    (
        "too_few_fields",
        "raw_customers",
        CUSTOMERS + b"1,Ann\n",
        "line 2: the row has 2 fields, but the header has 3.",
    ),
    (
        "not_utf8",
        "raw_customers",
        CUSTOMERS + b"1,Ren\xe9,B.\n",
        "line 2: byte 6 of the line is 0xE9, which is not UTF-8",
    ),
    (
        "cut_last_line",
        "raw_payments",
        PAYMENTS + b"1,1,coupon,57\n2,1,coupon,5",
        "line 3: the last line has no line ending",
    ),
    (
        "old_mac",
        "raw_customers",
        CUSTOMERS.replace(b"\n", b"\r") + b"1,Ann,B.\r",
        "line 1: the lines end with a carriage return alone",
    ),
    (
        "crlf_appended",
        "raw_customers",
        CUSTOMERS + b"1,Ann,B.\n2,Bob,C.\r\n",
        "line 3: the line ends with CR LF (Windows), but the lines before it end with LF alone (Unix)",
    ),
    (
        "lf_appended",
        "raw_customers",
        CUSTOMERS.replace(b"\n", b"\r\n") + b'1,"Ann\nMarie",B.\r\n2,Bob,C.\n',
        "line 4: the line ends with LF alone (Unix), but the lines before it end with CR LF (Windows)",
    ),
    (
        "missing_column",
        "raw_orders",
        b"id,user_id,status\n1,1,placed\n",
        "line 1: required column(s) order_date missing.",
    ),
]


def verdict(session, table: str, path: Path | list[Path]) -> tuple[str, object]:
    """("loaded", the rows) or ("refused", the message, once it is clear nothing was left behind)."""
    before = session.build_objects()
    try:
        session.load_csv(
            TABLES[table], path if isinstance(path, list) else [path], allow_empty=False, into=VERSION
        )
    except RawFileError as error:
        # Nothing half-built stays: the raw step then publishes nothing and records nothing.
        assert session.build_objects() == before, f"{path} left an object behind"
        return "refused", str(error)
    columns = ", ".join(session.identifier(name) for name in TABLES[table].columns)
    _, rows = session.query(f"select {columns} from {session.table(BUILD_SCHEMA, VERSION)} order by 1")
    session.drop({VERSION: "table"})
    return "loaded", [tuple(str(value) if value is not None else None for value in row) for row in rows]


def run_case(session, folder: Path, case) -> tuple[str, object]:
    name, table, data, _ = case
    path = folder / name / f"{table}.csv"
    path.parent.mkdir()
    path.write_bytes(data)
    return verdict(session, table, path)


def duckdb_verdicts(folder: Path) -> dict:
    """Every case's verdict on DuckDB, from one DuckDB file in ``folder``."""
    with duckdb.connect(str(folder / "contract.duckdb")) as conn:
        session = DuckDBSession(conn)
        return {case[0]: run_case(session, folder, case) for case in CASES}


def strip_folder(message: str) -> str:
    """The message without the folder the file was in."""
    head, sep, tail = message.partition(".csv")
    return head.rsplit("/", 1)[-1] + sep + tail
