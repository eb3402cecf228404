"""A raw CSV file either loads correctly or fails with a message that says what to fix.

Each failing case first loads the good sample, then the bad file, and checks that the table
still holds the sample: a failed load never leaves a half-written or emptied table.
"""

import hashlib
from pathlib import Path

import duckdb
import pytest

from dagster_project.defs.ingest.csv_errors import RawFileError, describe_csv_error, refuse_unreadable
from dagster_project.defs.ingest.data_source import DataSourceError, LocalDataSource
from dagster_project.defs.ingest.input_contract import EXPECTED
from dagster_project.defs.ingest.tables import RAW_TABLES
from dagster_project.settings import SAMPLE_DATA_DIR
from dagster_project.warehouse.duckdb import DuckDBSession
from tests.helpers import load_sample_tables, materialize_raw, replace_file

TABLES = {table.name: table for table in RAW_TABLES}
INTEGER, DATE = EXPECTED["INTEGER"], EXPECTED["DATE"]
CUSTOMERS_HEADER = b"id,first_name,last_name\n"


@pytest.fixture
def warehouse(project_env):
    """A connection to a DuckDB file that already holds the three sample tables."""
    with project_env.warehouse().get_connection() as conn:
        load_sample_tables(conn)
        yield conn


def contents(conn, table: str) -> list[tuple]:
    """What users read: the published table."""
    return conn.execute(f"select * from main.{table} order by all").fetchall()


def version(table: str) -> str:
    """The version a test's load writes, in the private build schema."""
    return f"{table}__{'0' * 32}"


def load_csv(conn, table: str, path: Path, allow_empty: bool) -> int:
    return DuckDBSession(conn).load_csv(TABLES[table], [path], allow_empty=allow_empty, into=version(table))


def loaded(conn, table: str) -> list[tuple]:
    """What a load wrote: its version in the private build schema, before any publish."""
    return conn.execute(f"select * from jaffle_build.{version(table)} order by all").fetchall()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def refused(conn, table: str, path: Path, allow_empty: bool = False) -> str:
    """Load ``path`` into ``table``; assert it fails and the table is untouched; the message."""
    before = contents(conn, table)
    build_before = DuckDBSession(conn).build_objects()
    with pytest.raises(RawFileError) as caught:
        load_csv(conn, table, path, allow_empty=allow_empty)
    assert contents(conn, table) == before
    # Nothing half-written is left behind, and nothing that was there is gone.
    assert DuckDBSession(conn).build_objects() == build_before
    message = str(caught.value)
    assert str(path) in message
    assert f"Nothing was published: {table} keeps its previous contents; fix the file" in message
    return message


def test_a_missing_file_fails_the_asset_naming_the_file_and_the_folder(project_env, warehouse):
    (project_env.data_dir / "raw_orders.csv").unlink()
    before = contents(warehouse, "raw_orders")
    with pytest.raises(DataSourceError) as caught:
        materialize_raw(project_env, ["raw_orders"])
    assert str(caught.value) == (
        f"{project_env.data_dir / 'raw_orders.csv'} is missing: the data folder "
        f"{project_env.data_dir} has no raw_orders.csv. Add the file, or point JAFFLE_DATA_DIR "
        "at the folder that has it. (raw_orders may also come as one file per day in raw_orders/ "
        "(named YYYY-MM-DD.csv).)"
    )
    assert contents(warehouse, "raw_orders") == before


def test_an_empty_file_is_refused(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"")
    message = refused(warehouse, "raw_customers", path)
    assert "is empty (0 bytes): expected a header line and rows." in message


def test_a_header_only_file_is_refused_unless_allow_empty_is_set(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", CUSTOMERS_HEADER)
    message = refused(warehouse, "raw_customers", path)
    assert message.startswith(
        f"{path} has a header but no rows. If an empty raw_customers is intended, set allow_empty: "
        "true in the run config. Nothing was published"
    )

    assert load_csv(warehouse, "raw_customers", path, allow_empty=True) == 0
    assert loaded(warehouse, "raw_customers") == []


def test_a_missing_required_column_is_named(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"id,first_name\n1,Michael\n")
    message = refused(warehouse, "raw_customers", path)
    assert f"{path}, line 1: required column(s) last_name missing." in message
    assert "The header is id,first_name; raw_customers needs id,first_name,last_name." in message


def test_header_only_files_are_published_as_empty_tables_when_the_run_config_sets_allow_empty(project_env):
    # All three, on a new warehouse: an empty table refers to no row of another.
    for table in RAW_TABLES:
        replace_file(project_env.data_dir / table.file_name, ",".join(table.columns) + "\n")

    materialize_raw(project_env, [table.name for table in RAW_TABLES], config={"allow_empty": True})

    assert project_env.published_tables() == {
        "raw_customers": [],
        "raw_orders": [],
        "raw_payments": [],
    }


def test_missing_required_columns_are_named_together(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"id\n1\n")
    message = refused(warehouse, "raw_customers", path)
    assert f"{path}, line 1: required column(s) first_name, last_name missing." in message


def test_columns_that_appear_twice_are_named(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"id,id,first_name,last_name,last_name\n1,1,Ann,B.,B.\n")
    message = refused(warehouse, "raw_customers", path)
    assert message.startswith(f"{path}, line 1: column(s) id, last_name appear twice. Nothing was published")


def test_a_header_that_is_not_utf8_is_refused_naming_the_byte(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"id,first_n\xe9me,last_name\n1,Ann,B.\n")
    message = refused(warehouse, "raw_customers", path)
    assert message.startswith(
        f"{path}, line 1: the header is not UTF-8 (byte 11). Save the file as UTF-8. Nothing was published"
    )


def test_an_extra_column_loads_and_is_dropped(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"id,email,first_name,last_name\n1,a@b.c,Ann,B.\n")
    assert load_csv(warehouse, "raw_customers", path, allow_empty=False) == 1
    assert loaded(warehouse, "raw_customers") == [(1, "Ann", "B.")]


@pytest.mark.parametrize(
    ("table", "data", "where"),
    [
        (
            "raw_customers",
            b"id,first_name,last_name\n1,Ann,B.\nabc,Bob,C.\n",
            f"line 3: column 1 (id) holds 'abc', which is not {INTEGER}. The line reads: 'abc,Bob,C.'.",
        ),
        (
            "raw_payments",
            b"id,order_id,payment_method,amount\n1,1,coupon,12.5x\n",
            f"line 2: column 4 (amount) holds '12.5x', which is not {INTEGER}. "
            "The line reads: '1,1,coupon,12.5x'.",
        ),
        (
            "raw_orders",
            b"id,user_id,order_date,status\n1,1,2018-01-01,placed\n2,1,2018-13-45,placed\n",
            f"line 3: column 3 (order_date) holds '2018-13-45', which is not {DATE}. "
            "The line reads: '2,1,2018-13-45,placed'.",
        ),
    ],
    ids=["id", "amount", "date"],
)
def test_a_value_of_the_wrong_type_is_shown_with_its_line_and_column(tmp_path, warehouse, table, data, where):
    path = write(tmp_path, f"{table}.csv", data)
    assert f"{path}, {where}" in refused(warehouse, table, path)


@pytest.mark.parametrize(
    ("row", "fields"), [(b"2,Bob,C.,extra", 4), (b"2,Bob", 2)], ids=["too_many", "too_few"]
)
def test_a_row_with_the_wrong_number_of_fields_is_shown(tmp_path, warehouse, row, fields):
    path = write(tmp_path, "raw_customers.csv", CUSTOMERS_HEADER + b"1,Ann,B.\n" + row + b"\n")
    message = refused(warehouse, "raw_customers", path)
    assert f"{path}, line 3: the row has {fields} fields, but the header has 3." in message
    assert f"The line reads: {row.decode()!r}." in message


def test_an_unbalanced_quote_is_shown_with_its_line(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", CUSTOMERS_HEADER + b'1,"Ann,B.\n2,Bob,C.\n')
    message = refused(warehouse, "raw_customers", path)
    assert f"{path}, line 2: a quoted value is never closed (an unbalanced double quote)." in message


def test_a_non_utf8_byte_is_located(tmp_path, warehouse):
    # "Jérôme" saved as Latin-1: é is the single byte 0xE9.
    path = write(tmp_path, "raw_customers.csv", CUSTOMERS_HEADER + b"1,Ann,B.\n2,J\xe9r\xf4me,C.\n")
    message = refused(warehouse, "raw_customers", path)
    assert message.startswith(
        f"{path}, line 3: byte 4 of the line is 0xE9, which is not UTF-8 (the file is probably "
        "Latin-1 or Windows-1252). Save it as UTF-8. Nothing was published"
    )


@pytest.mark.parametrize("rows", [1, 250_000], ids=["short", "several_megabytes"])
def test_a_cut_file_is_refused_naming_its_last_line(tmp_path, warehouse, rows):
    # The last line has no line ending: the export may have stopped half-way.
    path = write(tmp_path, "raw_customers.csv", CUSTOMERS_HEADER + b"1,Ann,B.\n" * rows + b"2,Bob,C")
    message = refused(warehouse, "raw_customers", path)
    assert message.startswith(
        f"{path}, line {rows + 2}: the last line has no line ending, so the file may be cut short "
        "(an export or a copy that stopped half-way). Export the file again; if it is complete, end "
        "it with a line break. Nothing was published"
    )


def test_a_utf8_bom_loads(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"\xef\xbb\xbf" + CUSTOMERS_HEADER + "1,Zoë,B.\n".encode())
    assert load_csv(warehouse, "raw_customers", path, allow_empty=False) == 1
    assert loaded(warehouse, "raw_customers") == [(1, "Zoë", "B.")]


def test_crlf_line_endings_load(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"id,first_name,last_name\r\n1,Ann,B.\r\n2,Bob,C.\r\n")
    assert load_csv(warehouse, "raw_customers", path, allow_empty=False) == 2
    assert loaded(warehouse, "raw_customers") == [(1, "Ann", "B."), (2, "Bob", "C.")]


def test_a_data_folder_whose_path_holds_a_quote_and_a_space_loads(project_env, tmp_path):
    folder = tmp_path / "it's my data"
    folder.mkdir()
    for table in RAW_TABLES:
        write(folder, table.file_name, (SAMPLE_DATA_DIR / table.file_name).read_bytes())
    result = materialize_raw(
        project_env, [table.name for table in RAW_TABLES], data_source=LocalDataSource(directory=str(folder))
    )
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["raw_orders"]]
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == 99
    assert [column.name for column in metadata["dagster/column_schema"].value.columns] == [
        "id",
        "user_id",
        "order_date",
        "status",
    ]
    assert metadata["source_file"].value == str(folder / "raw_orders.csv")
    # What the sensor compares with the file it watches.
    assert (
        metadata["source_sha256"].value
        == hashlib.sha256((folder / "raw_orders.csv").read_bytes()).hexdigest()
    )
    assert project_env.query("select count(*) from main.raw_orders") == [(99,)]


# The input contract (docs/reliability.md): forms an engine would load as something else.
PAYMENTS = b"id,order_id,payment_method,amount\n"
ORDERS = b"id,user_id,order_date,status\n"


@pytest.mark.parametrize(
    ("table", "data", "where"),
    [
        (
            "raw_payments",
            PAYMENTS + b"1,1,coupon,1634.5\n",
            f"line 2: column 4 (amount) holds '1634.5', which is not {INTEGER}.",
        ),
        (
            "raw_payments",
            PAYMENTS + b"1,1,coupon,21.61\n",
            f"line 2: column 4 (amount) holds '21.61', which is not {INTEGER}.",
        ),
        (
            "raw_payments",
            PAYMENTS + b"1,1,coupon,1e3\n",
            f"line 2: column 4 (amount) holds '1e3', which is not {INTEGER}.",
        ),
        (
            "raw_payments",
            PAYMENTS + b"1, 1,coupon,100\n",
            f"line 2: column 2 (order_id) holds ' 1', which is not {INTEGER}.",
        ),
        (
            "raw_orders",
            ORDERS + b"1,1,18-03-02,placed\n",
            f"line 2: column 3 (order_date) holds '18-03-02', which is not {DATE}.",
        ),
        (
            "raw_orders",
            ORDERS + b"1,1,2018-1-25,placed\n",
            f"line 2: column 3 (order_date) holds '2018-1-25', which is not {DATE}.",
        ),
        (
            "raw_orders",
            ORDERS + b"1,1,0018-03-02,placed\n",
            f"line 2: column 3 (order_date) holds '0018-03-02', which is not {DATE}.",
        ),
        (
            "raw_customers",
            b'id,first_name,last_name\n1,"Ann\nMarie",B.\n2,Bob,C.\nx,Eve,D.\n',
            f"line 5: column 1 (id) holds 'x', which is not {INTEGER}.",
        ),
        (
            # A value holding Windows line breaks in a file of Unix lines: its lines are not records.
            "raw_customers",
            b'id,first_name,last_name\n1,"Ann ""Jo""\r\nMarie\r\nLou",B.\nx,Eve,D.\n',
            f"line 5: column 1 (id) holds 'x', which is not {INTEGER}.",
        ),
        (
            "raw_orders",
            ORDERS + b"1,1,2018-01-01,placed\n,,,\n",
            "line 3: the row is empty (',,,'). Delete the empty rows (a spreadsheet often leaves "
            "some at the end of an export).",
        ),
        (
            # The 32-bit integers' ends and empty fields (nulls) keep to the contract.
            "raw_payments",
            PAYMENTS + b"1,-2147483648,coupon,2147483647\n2,,coupon,\n3,1,coupon,2147483648\n",
            f"line 4: column 4 (amount) holds '2147483648', which is not {INTEGER}.",
        ),
    ],
    ids=[
        "half_cent",
        "dollars",
        "exponent",
        "leading_space",
        "two_digit_year",
        "unpadded_month",
        "year_18",
        "after_a_quoted_newline",
        "after_quoted_windows_line_breaks",
        "empty_row",
        "after_the_integers_ends_and_nulls",
    ],
)
def test_a_value_outside_the_input_contract_is_refused_with_its_line_and_column(
    tmp_path, warehouse, table, data, where
):
    path = write(tmp_path, f"{table}.csv", data)
    assert f"{path}, {where}" in refused(warehouse, table, path)


def test_a_file_that_mixes_line_endings_is_refused_naming_the_line_and_the_fix_on_either_engine(
    tmp_path, warehouse
):
    # Rows appended by another program, with Windows line endings.
    path = write(tmp_path, "raw_customers.csv", CUSTOMERS_HEADER + b"1,Ann,B.\n2,Bob,C.\r\n")
    told = (
        f"{path}, line 3: the line ends with CR LF (Windows), but the lines before it end with LF "
        "alone (Unix): the file mixes two kinds of line ending (two programs wrote it?). Save it "
        "with one kind throughout."
    )
    assert refused(warehouse, "raw_customers", path).startswith(f"{told} Nothing was published")
    # Spark's reader would take either ending: the file is refused before Spark reads it.
    with pytest.raises(RawFileError) as caught:
        refuse_unreadable(path)
    assert str(caught.value) == told


def test_old_mac_line_endings_are_refused_naming_the_fix(tmp_path, warehouse):
    path = write(tmp_path, "raw_customers.csv", b"id,first_name,last_name\r1,Ann,B.\r")
    message = refused(warehouse, "raw_customers", path)
    assert message.startswith(
        f"{path}, line 1: the lines end with a carriage return alone (the old Mac format), which "
        "neither reader takes. Save the file with LF or CRLF line endings. Nothing was published"
    )


# DuckDB's own CSV errors. The load names a refused record from its own reading of the file
# (as on Spark); should DuckDB ever refuse a file that reading passes, DuckDB's error is retold:
# file, line and what is wrong, without its advice (ignore_errors=true would drop rows).


def duckdb_csv_error(path: Path, header: list[str]) -> duckdb.Error:
    """What DuckDB's reader raises on ``path``, read with the load's options."""
    columns = ", ".join(f"'{name}': 'VARCHAR'" for name in header)
    with pytest.raises(duckdb.Error) as raised:
        duckdb.sql(
            f"from read_csv('{path}', columns = {{{columns}}}, header = true, auto_detect = false, "
            "strict_mode = true, delim = ',', quote = '\"', escape = '\"')"
        ).fetchall()
    return raised.value


@pytest.mark.parametrize(
    ("data", "told"),
    [
        (
            b'1,"Ada"x,L.\n',
            ", line 2: a quoted value is never closed (an unbalanced double quote). The line reads: '1,\"Ada\"x,L.'.",
        ),
        (
            b"1,Ada,L.\n2,Bob\n",
            ", line 3: the row has 2 fields, but the header has 3. The line reads: '2,Bob'.",
        ),
        (
            b"1,Ada,L.,x\n",
            ", line 2: the row has 4 fields, but the header has 3. The line reads: '1,Ada,L.,x'.",
        ),
        (
            b"1,Ren\xe9,L.\n",
            ", line 2: byte 6 of the line is 0xE9, which is not UTF-8 (the file is probably Latin-1 or "
            "Windows-1252). Save it as UTF-8.",
        ),
        (b"1,Ada\r,L.\n", ": Invalid Input Error: The CSV Parser state machine reached an invalid state."),
    ],
    ids=["quote", "short_row", "long_row", "latin1", "other"],
)
def test_duckdbs_own_csv_error_is_retold_with_file_line_and_problem_without_its_advice(tmp_path, data, told):
    path = write(tmp_path, "raw_customers.csv", CUSTOMERS_HEADER + data)
    header = ["id", "first_name", "last_name"]

    message = describe_csv_error(path, header, duckdb_csv_error(path, header))

    assert message == f"{path}{told}"
