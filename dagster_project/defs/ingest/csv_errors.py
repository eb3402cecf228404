"""Turn CSV reader errors (DuckDB's, Spark's) into messages a person can act on.

DuckDB's own text is long, says types were "auto-detected" when we declared them, and suggests
``ignore_errors=true``, which would silently drop rows. We keep the facts (line, column, value)
and drop the advice; the caller says what happened to the table.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from dagster_project.defs.ingest.input_contract import EXPECTED, invalid

_LINE = re.compile(r"CSV Error on Line: (\d+)")
_ORIGINAL = re.compile(r"Original Line: (.*?)\n", re.DOTALL)
_CONVERT = re.compile(
    r'Error when converting column "(?P<column>[^"]+)"\. Could not convert string "(?P<value>[^"]*)" to \'(?P<type>[^\']+)\''
)
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


class RawFileError(ValueError):
    """A raw CSV file cannot be loaded as it is."""


def first_non_utf8_byte(path: Path) -> tuple[int, int, int] | None:
    """(line, position in the line, byte value) of the first byte that is not UTF-8, if any."""
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return number, error.start + 1, line[error.start]
    return None


def _encoding_message(path: Path, where: str) -> str:
    # DuckDB prints the offending line with the bad bytes replaced, which hides them; we find
    # the byte ourselves (only on this error path, so the normal load never reads the file twice).
    found = first_non_utf8_byte(path)
    if found is None:
        return f"{where}: the file is not UTF-8 encoded. Save it as UTF-8."
    return _non_utf8_message(path, *found)


def _non_utf8_message(path: Path, line: int, position: int, byte: int) -> str:
    return (
        f"{path}, line {line}: byte {position} of the line is 0x{byte:02X}, which is not UTF-8 "
        "(the file is probably Latin-1 or Windows-1252). Save it as UTF-8."
    )


_ENDINGS = {b"\r\n": "CR LF (Windows)", b"\n": "LF alone (Unix)"}


def unreadable_line(path: Path) -> str | None:
    """What makes ``path`` unreadable line by line, with the line, or None; one pass over the file.

    Two things neither reader reports usefully: a byte that is not UTF-8, and a record that ends
    otherwise than the header (a file appended to by another program). DuckDB refuses mixed
    line endings with "the CSV Parser state machine reached an invalid state", naming no line;
    Spark's reader takes either, so the same file is refused on both. A line break inside a
    quoted value is part of the value, whatever its kind: a line whose double quotes leave a
    value open does not end a record.
    """
    expected = None
    quoted = False
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                # Said from what this pass found, without reading the file again.
                return _non_utf8_message(path, number, error.start + 1, line[error.start])
            # An odd number of quotes opens or closes a value; a doubled quote ("") counts two.
            quoted ^= line.count(b'"') % 2 == 1
            if quoted or not line.endswith(b"\n"):
                continue
            ending = b"\r\n" if line.endswith(b"\r\n") else b"\n"
            if expected is None:
                expected = ending
            elif ending != expected:
                return (
                    f"{path}, line {number}: the line ends with {_ENDINGS[ending]}, but the lines "
                    f"before it end with {_ENDINGS[expected]}: the file mixes two kinds of line "
                    "ending (two programs wrote it?). Save it with one kind throughout."
                )
    return None


def refuse_unreadable(path: Path) -> None:
    """Refuse a file that is not UTF-8 or mixes line endings, for readers that would load it
    (Spark's, with replacement characters for the bytes); reads the whole file, so only those
    readers pay for it."""
    if found := unreadable_line(path):
        raise RawFileError(found)


def describe_csv_error(path: Path, header: list[str], error: Exception) -> str:
    text = str(error)
    line = _LINE.search(text)
    where = f"{path}, line {line[1]}" if line else str(path)
    if "Invalid unicode" in text:
        return _encoding_message(path, where)
    original = _ORIGINAL.search(text)
    shown = f" The line reads: {original[1].strip()!r}." if original else ""

    if convert := _CONVERT.search(text):
        column = convert["column"]
        position = header.index(column) + 1 if column in header else "?"
        problem = (
            f"column {position} ({column}) holds {convert['value']!r}, "
            f"which is not a valid {convert['type']}."
        )
    elif counts := _COLUMNS.search(text):
        problem = f"the row has {counts[2]} fields, but the header has {counts[1]}."
    elif "unterminated quote" in text:
        problem = "a quoted value is never closed (an unbalanced double quote)."
    else:
        problem = text.splitlines()[0]
    return f"{where}: {problem}{shown}"


def files_place(paths: list[Path]) -> Path:
    """How a message names a table's files: its one file, or the folder of its day files."""
    return paths[0] if len(paths) == 1 else paths[0].parent


def first_bad_record(headers: dict[Path, list[str]], columns: dict[str, str]) -> str | None:
    """``locate_bad_record`` over each file in turn (``headers`` holds each file's header)."""
    for path, header in headers.items():
        if found := locate_bad_record(path, header, columns):
            return found
    return None


def locate_bad_record(path: Path, header: list[str], columns: dict[str, str]) -> str | None:
    """The first record of ``path`` that does not fit ``columns``, described as for DuckDB.

    For readers that say only that a record is malformed (Spark's FAILFAST), and for values
    that break the input contract (``input_contract``), which both engines refuse without
    saying where: the file is read again here, record by record, so this runs only after a load
    has failed.
    """
    if found := unreadable_line(path):
        return found
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file, strict=True)
        next(reader, None)
        line = reader.line_num
        for record in _records(reader, path):
            if isinstance(record, str):
                return record.format(line=line + 1)
            first_line, line = line + 1, reader.line_num
            where = f"{path}, line {first_line}"
            shown = f" The line reads: {','.join(record)!r}."
            if len(record) != len(header):
                return f"{where}: the row has {len(record)} fields, but the header has {len(header)}.{shown}"
            if not any(record[header.index(name)] for name in columns):
                return (
                    f"{where}: the row is empty ({','.join(record)!r}). Delete the empty rows "
                    "(a spreadsheet often leaves some at the end of an export)."
                )
            for position, (name, value) in enumerate(zip(header, record, strict=True), start=1):
                declared = columns.get(name, "VARCHAR")
                if invalid(value, declared):
                    return (
                        f"{where}: column {position} ({name}) holds {value!r}, "
                        f"which is not {EXPECTED[declared]}.{shown}"
                    )
    return None


def _records(reader, path: Path):
    """The reader's records; at a quote never closed, a message (``{line}``: where it opens)."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield f"{path}, line {{line}}: a quoted value is never closed (an unbalanced double quote)."
            return
