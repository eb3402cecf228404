"""Raw assets: each CSV file is loaded into a DuckDB table of the same name.

DuckDB reads the file itself with declared column types, so no row passes through Python, and
the load is a single transaction: a file that fails to parse leaves the previous table as it was.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from dagster_project.accepted_values import ORDER_STATUSES, PAYMENT_METHODS
from dagster_project.csv_errors import RawFileError, describe_csv_error
from dagster_project.data_source import DataSource
from dagster_project.warehouse import (
    DUCKDB_POOL,
    WarehouseResource,
    column_schemas,
    sql_identifier,
    sql_string,
    sql_string_list,
)

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
            f"{error} {table.name} keeps its previous contents; fix the file, then materialize again."
        ) from None


def _replace_table(conn: duckdb.DuckDBPyConnection, table: RawTable, path: Path, allow_empty: bool) -> int:
    header = read_header(path, table)
    # Extra columns are read as text and dropped: the file may carry more than we use.
    file_columns = ", ".join(
        f"{sql_string(name)}: {sql_string(table.columns.get(name, 'VARCHAR'))}" for name in header
    )
    selected = ", ".join(sql_identifier(name) for name in table.columns)
    conn.execute("begin transaction")
    try:
        # The path and the header's names are quoted as SQL literals, never spliced in raw:
        # quotes and spaces in them are safe.
        conn.execute(
            f"create or replace table {table.name} as select {selected} from read_csv("
            f"{sql_string(str(path))}, columns = {{{file_columns}}}, header = true,"
            " auto_detect = false, strict_mode = true,"
            " delim = ',', quote = '\"', escape = '\"')"
        )
        (rows,) = conn.execute(f"select count(*) from {table.name}").fetchone()
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


def _offenders_check(
    conn: duckdb.DuckDBPyConnection,
    asset: str,
    check_name: str,
    query: str,
    problem: str,
) -> AssetCheckResult:
    """Pass when ``query`` (value, rows) finds nothing; otherwise say how many rows and which."""
    cursor = conn.execute(query)
    columns = [column[0] for column in cursor.description]
    offenders = cursor.fetchall()
    failing_rows = sum(row[-1] for row in offenders)
    description = (
        f"{failing_rows} row(s) of {asset} {problem}: {_examples(columns, offenders)}." if offenders else None
    )
    return AssetCheckResult(
        asset_key=AssetKey(asset),
        check_name=check_name,
        passed=not offenders,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "failing_rows": failing_rows,
            "distinct_failing_values": len(offenders),
            **({"sample": MetadataValue.md(_markdown_rows(columns, offenders[:10]))} if offenders else {}),
        },
    )


def _id_check(conn: duckdb.DuckDBPyConnection, table: RawTable) -> AssetCheckResult:
    return _offenders_check(
        conn,
        table.name,
        "id_is_unique_and_not_null",
        f"select id, count(*) as rows from {table.name} group by id "
        "having id is null or count(*) > 1 order by rows desc, id limit 1000",
        "have a missing or repeated id",
    )


def _accepted_values_check(conn: duckdb.DuckDBPyConnection, table: RawTable) -> AssetCheckResult:
    column, values = table.accepted_values
    quoted = sql_identifier(column)
    return _offenders_check(
        conn,
        table.name,
        f"{column}_is_accepted",
        f"select {quoted}, count(*) as rows from {table.name} "
        f"where {quoted} is null or not list_contains({sql_string_list(list(values))}, {quoted}) "
        "group by 1 order by rows desc limit 1000",
        f"have a {column} outside the accepted values ({', '.join(values)})",
    )


def _check_specs(table: RawTable) -> list[AssetCheckSpec]:
    specs = [
        AssetCheckSpec(
            "id_is_unique_and_not_null",
            asset=table.name,
            blocking=True,
            description="Every id is present and appears once.",
        )
    ]
    if table.accepted_values:
        column, values = table.accepted_values
        specs.append(
            AssetCheckSpec(
                f"{column}_is_accepted",
                asset=table.name,
                blocking=True,
                description=f"Every {column} is one of: {', '.join(values)}.",
            )
        )
    return specs


def _log_failures(
    context: AssetExecutionContext | AssetCheckExecutionContext, checks: list[AssetCheckResult]
) -> None:
    # The run's failure names only the check; the log line says which rows, in the run view.
    for result in checks:
        if not result.passed:
            context.log.error(f"Check {result.check_name} failed. {result.description}")


def build_raw_asset(table: RawTable) -> AssetsDefinition:
    @asset(
        name=table.name,
        group_name="ingest",
        kinds={"python", "duckdb"},
        code_version=INGEST_CODE_VERSION,
        pool=DUCKDB_POOL,
        check_specs=_check_specs(table),
        description=f"{table.file_name} from the data source, loaded into DuckDB as {table.name}.",
    )
    def _raw_asset(
        context: AssetExecutionContext,
        config: RawLoadConfig,
        duckdb: WarehouseResource,
        data_source: DataSource,
    ):
        path = data_source.local_path(table.file_name)
        fingerprint = data_source.fingerprint(table.file_name)
        with duckdb.get_connection() as conn:
            rows = load_csv(conn, table, path, allow_empty=config.allow_empty)
            schema = column_schemas(conn, [table.name])[table.name]
            checks = [_id_check(conn, table)]
            if table.accepted_values:
                checks.append(_accepted_values_check(conn, table))
        context.log.info(f"Loaded {rows} rows from {path} into {table.name}.")
        _log_failures(context, checks)
        return MaterializeResult(
            # The table follows from the file and the loader, so a new loader makes the models
            # downstream stale even when the file is unchanged.
            data_version=DataVersion(f"{INGEST_CODE_VERSION}:{fingerprint}"),
            metadata={
                "dagster/row_count": rows,
                "dagster/column_schema": schema,
                "source_file": MetadataValue.path(str(path)),
                "source_sha256": fingerprint,
            },
            check_results=checks,
        )

    return _raw_asset


def build_reference_check(asset: str, column: str, parent: str, parent_column: str) -> AssetChecksDefinition:
    """A blocking check that every ``asset.column`` names an existing ``parent`` row."""

    @asset_check(
        asset=asset,
        name=f"{column}_exists_in_{parent}",
        additional_deps=[parent],
        blocking=True,
        pool=DUCKDB_POOL,
        description=f"Every {column} in {asset} is an {parent_column} in {parent}.",
    )
    def _reference_check(context: AssetCheckExecutionContext, duckdb: WarehouseResource) -> AssetCheckResult:
        with duckdb.get_connection(read_only=True) as conn:
            result = _offenders_check(
                conn,
                asset,
                f"{column}_exists_in_{parent}",
                f"select child.{column}, count(*) as rows from {asset} as child "
                f"anti join {parent} as parent on child.{column} = parent.{parent_column} "
                "group by 1 order by rows desc limit 1000",
                f"have a {column} that is not an {parent_column} in {parent}",
            )
        _log_failures(context, [result])
        return result

    return _reference_check


raw_assets = [build_raw_asset(table) for table in RAW_TABLES]
raw_reference_checks = [
    build_reference_check("raw_orders", "user_id", "raw_customers", "id"),
    build_reference_check("raw_payments", "order_id", "raw_orders", "id"),
]
