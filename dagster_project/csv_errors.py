"""Turn DuckDB's CSV reader errors into messages a person can act on.

DuckDB's own text is long, says types were "auto-detected" when we declared them, and suggests
``ignore_errors=true``, which would silently drop rows. We keep the facts (line, column, value)
and drop the advice.
"""

from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r"CSV Error on Line: (\d+)")
_ORIGINAL = re.compile(r"Original Line: (.*?)\n", re.DOTALL)
_CONVERT = re.compile(
    r'Error when converting column "(?P<column>[^"]+)"\. Could not convert string "(?P<value>[^"]*)" to \'(?P<type>[^\']+)\''
)
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


class RawFileError(ValueError):
    """A raw CSV file cannot be loaded as it is."""


def describe_csv_error(path: Path, header: list[str], error: Exception) -> str:
    text = str(error)
    line = _LINE.search(text)
    where = f"{path}, line {line[1]}" if line else str(path)
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
    elif "Invalid unicode" in text:
        problem = "the file is not UTF-8 encoded. Save it as UTF-8 and load it again."
    else:
        problem = text.splitlines()[0]
    return f"{where}: {problem}{shown}"
