"""Loading a raw CSV file into a DuckDB table of the same name, in the build schema.

DuckDB reads the file itself with declared column types, so no row passes through Python, and
the load is a single transaction: a file that fails to parse leaves the previous table as it was.
The table lands in the private build schema; ``dagster_project.publish`` makes it visible.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dagster import Config
from pydantic import Field

from dagster_project.accepted_values import ORDER_STATUSES, PAYMENT_METHODS
from dagster_project.csv_errors import RawFileError, describe_csv_error
from dagster_project.publish import BUILD_SCHEMA, ensure_schemas
from dagster_project.warehouse import sql_identifier, sql_string

# Bump when the loading logic changes, so Dagster marks everything downstream as stale.
INGEST_CODE_VERSION = "1"

# The longest header we read; a real header is a few dozen bytes.
_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RawTable:
    name: str
    columns: dict[str, str]
    accepted_values: tuple[str, tuple[str, ...]] | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def build_table(self) -> str:
        """Where a run loads the file: the private build schema."""
        return f"{BUILD_SCHEMA}.{self.name}"


RAW_TABLES = (
    RawTable("raw_customers", {"id": "INTEGER", "first_name": "VARCHAR", "last_name": "VARCHAR"}),
    RawTable(
        "raw_orders",
        {"id": "INTEGER", "user_id": "INTEGER", "order_date": "DATE", "status": "VARCHAR"},
        accepted_values=("status", ORDER_STATUSES),
    ),
    RawTable(
        "raw_payments",
        {"id": "INTEGER", "order_id": "INTEGER", "payment_method": "VARCHAR", "amount": "INTEGER"},
        accepted_values=("payment_method", PAYMENT_METHODS),
    ),
)


class RawLoadConfig(Config):
    allow_empty: bool = Field(
        default=False,
        description="Accept a file with a header and no rows, replacing the table with an empty "
        "one. Off by default: an empty export is far more often a mistake than a fact.",
    )
    allow_shrink: bool = Field(
        default=False,
        description="Accept a load that shrinks a table by more than max_shrink. Off by default: "
        "a truncated export would otherwise replace a table with a fraction of its rows.",
    )
    max_shrink: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The largest share of its published rows a table may lose in one load "
        "(0.5: half) before the row_count_did_not_shrink check fails.",
    )


def read_header(path: Path, table: RawTable) -> list[str]:
    """The file's column names, after checking that every declared column is there."""
    with path.open("rb") as file:
        first_line = file.readline(_MAX_HEADER_BYTES)
    if not first_line:
        raise RawFileError(f"{path} is empty (0 bytes): expected a header line and rows.")
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RawFileError(
            f"{path}, line 1: the header is not UTF-8 (byte {error.start + 1}). Save the file as UTF-8."
        ) from None
    header = [name.strip() for name in next(csv.reader([text.rstrip("\r\n")]))]
    missing = [name for name in table.columns if name not in header]
    if missing:
        raise RawFileError(
            f"{path}, line 1: required column(s) {', '.join(missing)} missing. "
            f"The header is {','.join(header)}; {table.name} needs {','.join(table.columns)}."
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise RawFileError(f"{path}, line 1: column(s) {', '.join(duplicated)} appear twice.")
    return header


def load_csv(conn: duckdb.DuckDBPyConnection, table: RawTable, path: Path, allow_empty: bool) -> int:
    """Create or replace ``table`` from ``path`` in one transaction; return the row count."""
    try:
        return _replace_table(conn, table, path, allow_empty)
    except RawFileError as error:
        raise RawFileError(
            f"{error} Nothing was published: {table.name} keeps its previous contents; "
            "fix the file, then materialize again."
        ) from None


def _replace_table(conn: duckdb.DuckDBPyConnection, table: RawTable, path: Path, allow_empty: bool) -> int:
    header = read_header(path, table)
    # Extra columns are read as text and dropped: the file may carry more than we use.
    file_columns = ", ".join(
        f"{sql_string(name)}: {sql_string(table.columns.get(name, 'VARCHAR'))}" for name in header
    )
    selected = ", ".join(sql_identifier(name) for name in table.columns)
    ensure_schemas(conn)
    conn.execute("begin transaction")
    try:
        # The path and the header's names are quoted as SQL literals, never spliced in raw:
        # quotes and spaces in them are safe.
        conn.execute(
            f"create or replace table {table.build_table} as select {selected} from read_csv("
            f"{sql_string(str(path))}, columns = {{{file_columns}}}, header = true,"
            " auto_detect = false, strict_mode = true,"
            " delim = ',', quote = '\"', escape = '\"')"
        )
        (rows,) = conn.execute(f"select count(*) from {table.build_table}").fetchone()
        if rows == 0 and not allow_empty:
            raise RawFileError(
                f"{path} has a header but no rows. If an empty {table.name} is intended, "
                "set allow_empty: true in the run config."
            )
        conn.execute("commit")
    except duckdb.Error as error:
        conn.execute("rollback")
        raise RawFileError(describe_csv_error(path, header, error)) from None
    except BaseException:
        conn.execute("rollback")
        raise
    return rows
