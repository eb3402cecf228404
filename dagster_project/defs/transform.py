"""The dbt project as Dagster assets: ``dbt build`` runs through Dagster, dbt tests are checks."""

import importlib.metadata
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Output
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from packaging import version

from dagster_project.dbt_project import dbt_vars, jaffle_shop_project
from dagster_project.warehouse import (
    DUCKDB_POOL,
    WarehouseResource,
    column_schemas,
    sql_identifier,
    sql_string_list,
)


class DbtCli(DbtCliResource):
    """``DbtCliResource`` without two costs that this project does not need.

    Per run, dagster-dbt starts ``dbt --version`` to learn the version (about 3 s here), and it
    builds a dbt adapter inside the run process (about 3 s of macro parsing) only to fetch row
    counts and column types; that adapter also keeps the DuckDB file open after dbt exits,
    locking out the next step. Our dbt is the venv's, so its version is dbt-core's, and we read
    the metadata with our own short connection (``with_table_metadata``).
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


class JaffleTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "transform"


def _model_name(event: object) -> str | None:
    if isinstance(event, Output):
        unique_id = event.metadata.get("unique_id")
        if unique_id is not None and unique_id.value.startswith("model."):
            return unique_id.value.rsplit(".", 1)[-1]
    return None


def _table_metadata(duckdb: WarehouseResource, models: list[str]) -> dict[str, dict[str, Any]]:
    with duckdb.get_connection(read_only=True) as conn:
        schemas = column_schemas(conn, models)
        tables = [
            name
            for (name,) in conn.execute(
                "select table_name from duckdb_tables() where schema_name = current_schema() "
                f"and list_contains({sql_string_list(models)}, table_name)"
            ).fetchall()
        ]
        # Views are skipped: counting them would run their query again.
        counts = {
            name: conn.execute(f"select count(*) from {sql_identifier(name)}").fetchone()[0]
            for name in tables
        }
    return {
        name: {
            **({"dagster/column_schema": schemas[name]} if name in schemas else {}),
            **({"dagster/row_count": counts[name]} if name in counts else {}),
        }
        for name in models
    }


def with_table_metadata(events: Iterator[Any], duckdb: WarehouseResource) -> Iterator[Any]:
    """Stream dbt's events, holding model outputs back until dbt has exited.

    DuckDB allows one process on the file while dbt writes, so row counts and column types
    can only be read once dbt is done. Test results still stream live.
    """
    held: list[tuple[str, Output]] = []
    for event in events:
        if name := _model_name(event):
            held.append((name, event))
        else:
            yield event
    if not held:
        return
    metadata = _table_metadata(duckdb, [name for name, _ in held])
    for name, event in held:
        yield event.with_metadata({**event.metadata, **metadata[name]})


@dbt_assets(
    manifest=jaffle_shop_project().manifest_path,
    project=jaffle_shop_project(),
    dagster_dbt_translator=JaffleTranslator(),
    pool=DUCKDB_POOL,
)
def jaffle_shop_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource, duckdb: WarehouseResource):
    # Opening the file first turns a lock held by another program into our clear, bounded
    # error instead of dbt's, which arrives only after dbt has parsed and connected.
    with duckdb.get_connection():
        pass
    # dagster-dbt gives every run its own target folder and never removes it (2 MB a run);
    # the events are streamed into Dagster, so nothing in it is needed after the step.
    with tempfile.TemporaryDirectory(prefix="dbt-target-") as target_path:
        invocation = dbt.cli(
            ["build", *dbt_vars(duckdb.database)], context=context, target_path=Path(target_path)
        )
        yield from with_table_metadata(invocation.stream(), duckdb)
