"""Loading a raw CSV file into a version of its table, in the warehouse's build schema.

What every engine shares: the three tables and their declared column types, the run config, the
header check and the wording of a refusal. Each engine reads the file with its own CSV reader
(``Session.load_csv`` in ``dagster_project/warehouse/``); the table lands in the private build
schema as a version of the run's own, and the publish step makes it visible.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from dagster import Config
from pydantic import Field

from dagster_project.accepted_values import ORDER_STATUSES, PAYMENT_METHODS
from dagster_project.csv_errors import RawFileError

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


def _line_count(path: Path) -> int:
    """The number of physical lines, counted only for a refused file (it reads the whole file)."""
    newlines = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            newlines += chunk.count(b"\n")
    return newlines + 1


def read_header(path: Path, table: RawTable) -> list[str]:
    """The file's column names, after checking its line endings and every declared column.

    Reads the first line and the last byte: what the CSV readers cannot tell us cheaply.
    """
    with path.open("rb") as file:
        first_line = file.readline(_MAX_HEADER_BYTES)
        file.seek(0, 2)
        if file.tell():
            file.seek(-1, 2)
        last_byte = file.read(1)
    if not first_line:
        raise RawFileError(f"{path} is empty (0 bytes): expected a header line and rows.")
    if b"\r" in first_line.rstrip(b"\r\n"):
        raise RawFileError(
            f"{path}, line 1: the lines end with a carriage return alone (the old Mac format), "
            "which neither reader takes. Save the file with LF or CRLF line endings."
        )
    if last_byte != b"\n":
        # A cut export (a copy stopped half-way) ends inside a line: its last value would load
        # cut short, as a different value, with nothing else to notice it.
        raise RawFileError(
            f"{path}, line {_line_count(path)}: the last line has no line ending, so the file may "
            "be cut short (an export or "
            "a copy that stopped half-way). Export the file again; if it is complete, end it "
            "with a line break."
        )
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


def refused(table: RawTable, error: RawFileError) -> RawFileError:
    """``error``, saying what happened to the table and what to do."""
    return RawFileError(
        f"{error} Nothing was published: {table.name} keeps its previous contents; "
        "fix the file, then materialize again."
    )


def empty_file_error(table: RawTable, path: Path) -> RawFileError:
    return RawFileError(
        f"{path} has a header but no rows. If an empty {table.name} is intended, "
        "set allow_empty: true in the run config."
    )
