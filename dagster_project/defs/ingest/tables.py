"""Loading a raw CSV file into a version of its table, in the warehouse's build schema.

What every engine shares: the three tables and their declared column types, the run config, the
header check and the wording of a refusal. Each engine reads the file with its own CSV reader
(``Session.load_csv`` in ``dagster_project/warehouse/``); the table lands in the private build
schema as a version of the run's own, and the publish step makes it visible.
"""

import csv
import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dagster import Config
from pydantic import Field

from dagster_project.defs.ingest.accepted_values import ORDER_STATUSES, PAYMENT_METHODS
from dagster_project.defs.ingest.csv_errors import RawFileError, files_place

# Bump when the loading logic changes, so Dagster marks everything downstream as stale.
INGEST_CODE_VERSION = "1"

# The longest header we read; a real header is a few dozen bytes.
_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RawTable:
    name: str
    columns: dict[str, str]
    accepted_values: tuple[str, tuple[str, ...]] | None = None
    # Whether the table may also arrive as one file per day, in a folder named after it.
    daily: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def day_files(self) -> str:
        return f"one file per day in {self.name}/ (named YYYY-MM-DD.csv)"

    @property
    def layouts(self) -> str:
        """Where the table's rows may be, as people are told."""
        return f"{self.file_name}, or {self.day_files}" if self.daily else self.file_name


RAW_TABLES = (
    RawTable("raw_customers", {"id": "INTEGER", "first_name": "VARCHAR", "last_name": "VARCHAR"}),
    RawTable(
        "raw_orders",
        {"id": "INTEGER", "user_id": "INTEGER", "order_date": "DATE", "status": "VARCHAR"},
        accepted_values=("status", ORDER_STATUSES),
        daily=True,
    ),
    RawTable(
        "raw_payments",
        {"id": "INTEGER", "order_id": "INTEGER", "payment_method": "VARCHAR", "amount": "INTEGER"},
        accepted_values=("payment_method", PAYMENT_METHODS),
        daily=True,
    ),
)


def table_files(table: RawTable, listing: list[str]) -> list[str]:
    """The files in the data source's ``listing`` that hold ``table``'s rows, in day order.

    Either its one file (``raw_orders.csv``) or, for a daily table, the day files of its folder
    (``raw_orders/2018-01-01.csv``, ...): never both, since nothing could tell which is meant.
    An empty list when there is neither.
    """
    days = sorted(name for name in listing if PurePosixPath(name).parent == PurePosixPath(table.name))
    if not table.daily or not days:
        return [table.file_name] if table.file_name in listing else []
    if table.file_name in listing:
        raise RawFileError(
            f"The data folder holds both {table.file_name} and {len(days)} day file(s) in "
            f"{table.name}/ ({days[0]}, ...): {table.name} is read from one or the other, never "
            f"both. Remove {table.file_name}, or the {table.name}/ folder."
        )
    for name in days:
        _check_day_name(name)
    return days


def _check_day_name(name: str) -> None:
    stem = PurePosixPath(name).stem
    try:
        if datetime.date.fromisoformat(stem).isoformat() == stem:
            return
    except ValueError:
        pass
    raise RawFileError(
        f"{name}: a day file's name must be its day, YYYY-MM-DD.csv (for example "
        f"{PurePosixPath(name).parent}/2018-01-01.csv). Rename the file, or move it out of the folder."
    )


def combined_fingerprint(fingerprints: dict[str, str]) -> str:
    """One content hash for a table's files: a single file's own sha256, so a table that
    arrives in one file keeps the version it always had; for day files, a sha256 over each
    file's name and sha256, which changes when a day is added, removed or changed."""
    if len(fingerprints) == 1 and not PurePosixPath(next(iter(fingerprints))).parent.name:
        return next(iter(fingerprints.values()))
    lines = "".join(f"{name}\t{sha256}\n" for name, sha256 in sorted(fingerprints.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


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


def empty_file_error(table: RawTable, paths: list[Path]) -> RawFileError:
    where = (
        f"{paths[0]} has" if len(paths) == 1 else f"The {len(paths)} day files in {files_place(paths)} have"
    )
    return RawFileError(
        f"{where} a header but no rows. If an empty {table.name} is intended, "
        "set allow_empty: true in the run config."
    )


def files_with_one_header(headers: dict[Path, list[str]]) -> list[tuple[list[str], list[Path]]]:
    """The files grouped by their header, in the order each header first appears: each group
    can be read by one call of a CSV reader, which takes one list of columns."""
    groups: dict[tuple[str, ...], list[Path]] = {}
    for path, header in headers.items():
        groups.setdefault(tuple(header), []).append(path)
    return [(list(header), paths) for header, paths in groups.items()]
