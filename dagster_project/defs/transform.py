"""The dbt project as Dagster assets: ``dbt build`` runs through Dagster, dbt tests are checks."""

import importlib.metadata
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, Failure, Output
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, dbt_assets
from packaging import version

from dagster_project import steps
from dagster_project.catalog import failure_summary
from dagster_project.dbt_project import jaffle_shop_project
from dagster_project.warehouse import DUCKDB_POOL, Built, Warehouse


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


def _model_unique_id(event: object) -> str | None:
    if isinstance(event, Output):
        unique_id = event.metadata.get("unique_id")
        if unique_id is not None and unique_id.value.startswith("model."):
            return unique_id.value
    return None


def _failed_blocking_check(event: object) -> bool:
    return (
        isinstance(event, AssetCheckResult)
        and not event.passed
        and event.severity == AssetCheckSeverity.ERROR
    )


def _built(invocation: DbtCliInvocation, unique_ids: list[str]) -> list[Built]:
    """The models dbt built, each a table or a view with its compiled SELECT."""
    nodes = invocation.get_artifact("manifest.json")["nodes"]
    compiled = {
        result["unique_id"]: result.get("compiled_code")
        for result in invocation.get_artifact("run_results.json")["results"]
    }
    built = []
    for unique_id in unique_ids:
        node = nodes[unique_id]
        is_view = node["config"]["materialized"] == "view"
        built.append(Built(node["alias"], compiled[unique_id] if is_view else None))
    return built


def build_and_publish(
    context: AssetExecutionContext, invocation: DbtCliInvocation, duckdb: Warehouse
) -> Iterator[Any]:
    """Stream dbt's events, then publish what dbt built if every test passed.

    Test results stream live. Model outputs are held back: each is a materialization, and one
    may be recorded only once its table is published, after the last test. DuckDB also allows
    one process on the file while dbt writes, so row counts can only be read once dbt is done.
    """
    held: list[tuple[str, Output]] = []
    failed_checks: list[AssetCheckResult] = []
    for event in invocation.stream():
        if unique_id := _model_unique_id(event):
            held.append((unique_id, event))
            continue
        if _failed_blocking_check(event):
            failed_checks.append(event)
        yield event

    if not invocation.is_successful() or failed_checks:
        raise Failure(description=_failure_description(invocation, failed_checks))
    run_id = context.op_execution_context.run_id
    with duckdb.session() as session:
        built = _built(invocation, [unique_id for unique_id, _ in held])
        session.stage(run_id, built)
        published = session.publish(run_id)
        context.log.info(f"Published {', '.join(published)}.")
        metadata = session.table_metadata([item.name for item in built])
    for (_, event), item in zip(held, built, strict=True):
        yield event.with_metadata({**event.metadata, **metadata[item.name]})


def _failure_description(invocation: DbtCliInvocation, failed_checks: list[AssetCheckResult]) -> str:
    if failed_checks:
        return failure_summary(failed_checks, "A dbt test")
    error = invocation.get_error()
    reason = str(error).strip() if error else "dbt build failed."
    return f"dbt build failed, so nothing was published: the tables users read are unchanged. {reason}"


@dbt_assets(
    manifest=jaffle_shop_project().manifest_path,
    project=jaffle_shop_project(),
    dagster_dbt_translator=JaffleTranslator(),
    pool=DUCKDB_POOL,
)
def jaffle_shop_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource, duckdb: Warehouse):
    # Opening the file first (in begin) turns a lock held by another program into our clear,
    # bounded error instead of dbt's, which arrives only after dbt has parsed and connected.
    steps.begin(context, duckdb)
    try:
        # dagster-dbt gives every run its own target folder and never removes it (2 MB a run);
        # the events are streamed into Dagster, so nothing in it is needed after the step.
        with tempfile.TemporaryDirectory(prefix="dbt-target-") as target_path:
            # dbt starts inside cli(), copying os.environ then: the Spark URL is set for that moment.
            with duckdb.dbt_environment():
                invocation = dbt.cli(
                    ["build", *duckdb.dbt_vars()],
                    context=context,
                    target_path=Path(target_path),
                    raise_on_error=False,
                )
            yield from build_and_publish(context, invocation, duckdb)
    except BaseException:
        # A failed test, a dbt error, Terminate in the UI: nothing this run wrote stays.
        steps.abandon(context, duckdb)
        raise
