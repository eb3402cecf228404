"""The blocking checks on the raw tables, run on a run's versions before anything is published.

Each check is a query listing offending values with their row counts: it passes when the query
finds nothing, and otherwise says how many rows failed and shows the first values, so the run
log answers "which rows?" without anyone opening the database.

The SQL is written once for every engine: ``anti join`` and ``in (...)`` read the same on DuckDB
and Spark, and what differs (quoting, the catalog) goes through the ``Session``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
)

from dagster_project.defs.ingest.tables import RAW_TABLES, RawLoadConfig, RawTable
from dagster_project.warehouse import BUILD_SCHEMA, Entry, Session

# At most this many distinct offending values are fetched; the row count covers them all.
_OFFENDERS_LIMIT = 1000


@dataclass(frozen=True)
class Candidate:
    """The raw tables a run would publish, as the checks see them.

    ``versions`` maps each raw table to the version the run would leave published: its own
    where it loaded the file, the published one otherwise, so a check comparing two tables
    always compares what users would read together. ``published`` is what is published now,
    and ``loaded`` the entries of the versions this run loaded (their files and row counts).
    """

    versions: dict[str, str]
    published: dict[str, Entry]
    loaded: dict[str, Entry] = field(default_factory=dict)


@dataclass(frozen=True)
class RawCheck:
    """One blocking check on one raw table: its name, what it promises, and how it runs."""

    table: str
    name: str
    description: str
    run: Callable[[Session, RawLoadConfig, Candidate], AssetCheckResult]
    # The other raw table it compares with, if any.
    other: str | None = None

    @property
    def key(self) -> AssetCheckKey:
        return AssetCheckKey(asset_key=_asset_key(self.table), name=self.name)

    def reads(self, tables: set[str]) -> bool:
        """Whether the check reads any of ``tables``."""
        return self.table in tables or self.other in tables

    @property
    def spec(self) -> AssetCheckSpec:
        return AssetCheckSpec(self.name, asset=self.table, blocking=True, description=self.description)


def _asset_key(table: str) -> AssetKey:
    return AssetKey(table)


def _build(session: Session, candidate: Candidate, table: str) -> str:
    return session.build(candidate.versions[table])


def _markdown_rows(columns: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join("null" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _examples(columns: list[str], offenders: list[tuple]) -> str:
    shown = ", ".join(
        f"{'null' if value is None else repr(value)} ({rows} row{'s' if rows != 1 else ''})"
        for value, rows in offenders[:5]
    )
    more = f" and {len(offenders) - 5} more" if len(offenders) > 5 else ""
    return f"{columns[0]} {shown}{more}"


def offenders_check(
    session: Session, table: str, check_name: str, query: str, problem: str
) -> AssetCheckResult:
    """Pass when ``query`` (value, rows) finds nothing; otherwise say how many rows and which."""
    columns, offenders = session.query(f"{query} order by rows desc, 1 limit {_OFFENDERS_LIMIT}")
    failing_rows = sum(row[-1] for row in offenders)
    description = (
        f"{failing_rows} row(s) of {table} {problem}: {_examples(columns, offenders)}." if offenders else None
    )
    sample = {"sample": MetadataValue.md(_markdown_rows(columns, offenders[:10]))} if offenders else {}
    return AssetCheckResult(
        asset_key=_asset_key(table),
        check_name=check_name,
        passed=not offenders,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={"failing_rows": failing_rows, "distinct_failing_values": len(offenders), **sample},
    )


def _id_check(table: RawTable) -> RawCheck:
    name = "id_is_unique_and_not_null"
    return RawCheck(
        table.name,
        name,
        "Every id is present and appears once.",
        lambda session, _, candidate: offenders_check(
            session,
            table.name,
            name,
            f"select id, count(*) as rows from {_build(session, candidate, table.name)} group by id "
            "having id is null or count(*) > 1",
            "have a missing or repeated id",
        ),
    )


def _accepted_values_check(table: RawTable) -> RawCheck:
    column, values = table.accepted_values
    name = f"{column}_is_accepted"
    return RawCheck(
        table.name,
        name,
        f"Every {column} is one of: {', '.join(values)}.",
        lambda session, _, candidate: offenders_check(
            session,
            table.name,
            name,
            f"select {session.identifier(column)}, count(*) as rows "
            f"from {_build(session, candidate, table.name)} "
            f"where {session.identifier(column)} is null "
            f"or {session.identifier(column)} not in {session.string_tuple(list(values))} group by 1",
            f"have a {column} outside the accepted values ({', '.join(values)})",
        ),
    )


def _failed(table: str, check_name: str, description: str) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=_asset_key(table),
        check_name=check_name,
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description=description,
    )


def missing_table_result(table: str, check_name: str) -> AssetCheckResult:
    """The failed result of a check on a table that was never loaded."""
    return _failed(
        table,
        check_name,
        f"{table} has never been loaded, so {check_name} cannot run. Materialize {table} (or Materialize all).",
    )


def _missing_table(candidate: Candidate, table: str, check_name: str, other: str):
    """A failed result when ``other``, which the check compares with, was never loaded; else None."""
    if other in candidate.versions:
        return None
    return _failed(
        table,
        check_name,
        f"{table} cannot be checked against {other}, which has never been loaded. "
        f"Materialize {other} together with {table} (or Materialize all).",
    )


def _reference_check(table: str, column: str, parent: str, parent_column: str) -> RawCheck:
    name = f"{column}_exists_in_{parent}"
    return RawCheck(
        table,
        name,
        f"Every {column} in {table} is an {parent_column} in {parent}.",
        lambda session, _, candidate: (
            _missing_table(candidate, table, name, parent)
            or offenders_check(
                session,
                table,
                name,
                f"select child.{column}, count(*) as rows from {_build(session, candidate, table)} as child "
                f"anti join {_build(session, candidate, parent)} as parent "
                f"on child.{column} = parent.{parent_column} group by 1",
                f"have a {column} that is not an {parent_column} in {parent}",
            )
        ),
        other=parent,
    )


def _every_order_is_paid() -> RawCheck:
    name = "every_order_has_a_payment"
    return RawCheck(
        "raw_orders",
        name,
        "Every order has at least one payment in raw_payments.",
        lambda session, _, candidate: (
            _missing_table(candidate, "raw_orders", name, "raw_payments")
            or offenders_check(
                session,
                "raw_orders",
                name,
                f"select orders.id, count(*) as rows from {_build(session, candidate, 'raw_orders')} as orders "
                f"anti join {_build(session, candidate, 'raw_payments')} as payments "
                "on payments.order_id = orders.id group by 1",
                "have no payment in raw_payments",
            )
        ),
        other="raw_payments",
    )


def _amount_check() -> RawCheck:
    name = "amount_is_not_null_or_negative"
    return RawCheck(
        "raw_payments",
        name,
        "Every payment has an amount of zero cents or more.",
        lambda session, _, candidate: offenders_check(
            session,
            "raw_payments",
            name,
            f"select amount, count(*) as rows from {_build(session, candidate, 'raw_payments')} "
            "where amount is null or amount < 0 group by 1",
            "have a missing or negative amount",
        ),
    )


def _shrink_check(table: RawTable) -> RawCheck:
    return RawCheck(
        table.name,
        "row_count_did_not_shrink",
        "The load keeps at least half the rows last published from the same folder (run config "
        "max_shrink), unless the run config sets allow_shrink.",
        lambda session, config, candidate: shrink_result(session, table.name, config, candidate),
    )


def _same_folder(published: Entry | None, source: str | None) -> bool:
    """Whether the published table came from a file in the folder this run read ``source`` from.

    A file from another folder (generated data, then the sample again) is another data set,
    not a truncated export, so its size is not compared.
    """
    if published is None or published.source is None or source is None:
        return False
    return Path(published.source).parent == Path(source).parent


def _rows(session: Session, entry: Entry) -> int:
    """A version's row count: as its load counted it, or counted now for an entry recorded
    before loads kept their counts (a version never changes; counting is a query, on Spark a job)."""
    return entry.rows if entry.rows is not None else session.count(BUILD_SCHEMA, entry.version)


def shrink_result(
    session: Session, table: str, config: RawLoadConfig, candidate: Candidate
) -> AssetCheckResult:
    loaded = candidate.loaded.get(table)
    published = candidate.published.get(table)
    new_rows = _rows(session, loaded or published)
    compared = _same_folder(published, loaded.source if loaded else None)
    old_rows = _rows(session, published) if compared else 0
    lost = old_rows - new_rows
    share = lost / old_rows if old_rows else 0.0
    shrank_too_much = share > config.max_shrink
    passed = not shrank_too_much or config.allow_shrink
    if shrank_too_much:
        description = (
            f"{table} would go from {old_rows:,} published rows to {new_rows:,}: {share:.0%} fewer, "
            f"more than the {config.max_shrink:.0%} allowed (max_shrink). "
            + (
                "Accepted because the run config sets allow_shrink."
                if config.allow_shrink
                else "If the smaller file is right, materialize again with allow_shrink: true "
                "in the run config; otherwise export the file again."
            )
        )
    else:
        description = None
    return AssetCheckResult(
        asset_key=_asset_key(table),
        check_name="row_count_did_not_shrink",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "published_rows": old_rows,
            "loaded_rows": new_rows,
            "lost_share": round(share, 4),
            "compared_with_last_publish": compared,
        },
    )


def _checks_of(table: RawTable) -> list[RawCheck]:
    checks = [_id_check(table), _shrink_check(table)]
    if table.accepted_values:
        checks.append(_accepted_values_check(table))
    return checks


def raw_checks() -> tuple[RawCheck, ...]:
    """Every blocking check on the raw tables.

    Built on each call (eight small objects) rather than once at import, so what a check does
    is decided when it runs: mutation testing (docs/testing.md) changes a function only for the
    calls made while a test runs, never for those made while a module is imported.
    """
    return (
        *(check for table in RAW_TABLES for check in _checks_of(table)),
        _reference_check("raw_orders", "user_id", "raw_customers", "id"),
        _every_order_is_paid(),
        _reference_check("raw_payments", "order_id", "raw_orders", "id"),
        _amount_check(),
    )
