"""The input contract: exactly which text each raw column accepts, defined once for every engine.

docs/reliability.md ("The input contract") is this module as a table. Both engines read every
column as text and convert it in the same statement that creates the table, through the SQL
that ``conversion`` writes from these patterns, so DuckDB and Spark accept the same files; the
Python ``invalid`` applies the same rules to find the line and column of a refused value, on the
error path only. Anything looser (an engine rounding ``12.50`` to 13 for an integer, reading
``18-03-02`` as the year 18, a leading space) would load values nobody wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

# Whole numbers: an optional minus and digits. No fraction, exponent, sign "+", spaces or
# thousands separators: money is in integer cents, so "21.61" is an export in dollars.
INTEGER_PATTERN = "-?[0-9]{1,10}"
# ISO dates with a four-digit year from 1900 to 2099, zero-padded month and day.
DATE_PATTERN = "(19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}"
PATTERNS = {"INTEGER": INTEGER_PATTERN, "DATE": DATE_PATTERN}

# What each type must look like, for the error message.
EXPECTED = {
    "INTEGER": "a whole number: digits with an optional leading minus, no fraction, exponent or "
    "spaces (money is in integer cents: 21.61 dollars is 2161)",
    "DATE": "a date written YYYY-MM-DD, with a year from 1900 to 2099",
}
_INTEGER_RANGE = (-(2**31), 2**31 - 1)
# What the engines raise when a value breaks the contract; the Python check then names it.
REFUSED = "jaffle: a value breaks the input contract"
EMPTY_ROW = "jaffle: an empty row"


def invalid(value: str, declared: str) -> bool:
    """Whether ``value`` breaks the contract of ``declared`` (an empty field is a null)."""
    if value == "" or declared not in PATTERNS:
        return False
    if not re.fullmatch(PATTERNS[declared], value):
        return True
    if declared == "INTEGER":
        return not _INTEGER_RANGE[0] <= int(value) <= _INTEGER_RANGE[1]
    try:
        date.fromisoformat(value)
    except ValueError:
        return True
    return False


def conversion(
    column: str, declared: str, matches: Callable[[str, str], str], fail: Callable[[str], str]
) -> str:
    """The SQL that turns the text of ``column`` into ``declared``, failing on a refused value.

    ``column`` is quoted already; ``matches(column, pattern)`` and ``fail(message)`` are the
    engine's spelling of a whole-string regular-expression match and of raising an error.
    """
    if declared not in PATTERNS:
        return column
    valid = matches(column, PATTERNS[declared])
    if declared == "DATE":
        valid = f"{valid} and try_cast({column} as date) is not null"
    sql_type = "integer" if declared == "INTEGER" else "date"
    return f"case when {column} is null then null when {valid} then cast({column} as {sql_type}) else {fail(REFUSED)} end"


def not_empty(columns: list[str], fail: Callable[[str], str]) -> str:
    """A condition that fails on a row whose every field is empty (``,,,`` from a spreadsheet)."""
    return f"case when coalesce({', '.join(columns)}) is null then {fail(EMPTY_ROW)} else true end"
