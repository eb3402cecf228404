"""The dbt project as Dagster assets: ``dbt build`` runs through Dagster, dbt tests are checks."""

import importlib.metadata
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Failure,
    Output,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    dbt_assets,
)
from packaging import version

from dagster_project.defs.ingest.assets import RAW_KEYS
from dagster_project.defs.transform.dbt_child import PARENT_VARIABLE
from dagster_project.defs.transform.project import jaffle_shop_project
from dagster_project.warehouse import Entry, Session, State, Warehouse, version_name
from dagster_project.warehouse import publish as wap
from dagster_project.warehouse.catalog import restore_catalog

# How long dbt has to stop on an interrupt before it is killed.
DBT_STOP_SECONDS = 10


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

    def cli(self, args: Sequence[str], **kwargs: Any) -> DbtCliInvocation:
        # dbt copies the environment when it starts: it learns which process it must die with.
        os.environ[PARENT_VARIABLE] = str(os.getpid())
        return super().cli(args, **kwargs)


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


@dataclass(frozen=True)
class BuiltModel:
    """A model dbt built in the workspace: a table, or a view with its compiled SELECT."""

    name: str
    view_sql: str | None
    # The names in the build schema it reads (its sources and the models it refs).
    parents: tuple[str, ...]
    # The raw tables upstream of it, however far.
    raw_ancestors: tuple[str, ...]


def _built(invocation: DbtCliInvocation, unique_ids: list[str]) -> list[BuiltModel]:
    manifest = invocation.get_artifact("manifest.json")
    nodes, sources = manifest["nodes"], manifest["sources"]
    compiled = {
        result["unique_id"]: result.get("compiled_code")
        for result in invocation.get_artifact("run_results.json")["results"]
    }

    def relation_name(unique_id: str) -> str:
        return sources[unique_id]["name"] if unique_id in sources else nodes[unique_id]["alias"]

    def raw_ancestors(unique_id: str) -> set[str]:
        if unique_id in sources:
            return {sources[unique_id]["name"]}
        return set().union(*(raw_ancestors(parent) for parent in nodes[unique_id]["depends_on"]["nodes"]))

    built = []
    for unique_id in unique_ids:
        node = nodes[unique_id]
        is_view = node["config"]["materialized"] == "view"
        built.append(
            BuiltModel(
                name=node["alias"],
                view_sql=compiled[unique_id] if is_view else None,
                parents=tuple(relation_name(parent) for parent in node["depends_on"]["nodes"]),
                raw_ancestors=tuple(sorted(raw_ancestors(unique_id))),
            )
        )
    return built


def _freeze(
    session: Session, run_id: str, built: list[BuiltModel], pointers: dict[str, str], state: State
) -> dict[str, Entry]:
    """Keep what dbt built as this run's versions, and say what each was built from."""
    read = {**state.published, **state.pending.get(run_id, {})}
    versions = {**pointers, **{model.name: version_name(model.name, run_id) for model in built}}
    for wave in freeze_waves(built):
        session.run_all(
            [
                partial(session.freeze, model.name, versions[model.name], model.view_sql, versions)
                for model in wave
            ]
        )
    entries = {}
    for model in built:
        inputs = {raw: read[raw].inputs[raw] for raw in model.raw_ancestors if raw in read}
        entries[model.name] = Entry(
            versions[model.name],
            "view" if model.view_sql is not None else "table",
            inputs,
            # A view reads its parents' versions as they were when it was built.
            reads=[versions[parent] for parent in model.parents if model.view_sql and parent in versions],
        )
    return entries


def freeze_waves(built: list[BuiltModel]) -> Iterator[list[BuiltModel]]:
    """The models in the order they can be kept, each wave side by side.

    A view's version is created over its parents' versions, which must exist by then: a view
    waits for the models of this run it reads. A table is renamed, whatever it reads.
    """
    waiting = list(built)
    while waiting:
        names = {model.name for model in waiting}
        wave = [model for model in waiting if model.view_sql is None or not names & set(model.parents)]
        yield wave
        waiting = [model for model in waiting if model not in wave]


def build_and_publish(
    context: AssetExecutionContext,
    invocation: DbtCliInvocation,
    duckdb: Warehouse,
    pointers: dict[str, str],
    state: State,
) -> Iterator[Any]:
    """Stream dbt's events, then publish what dbt built if every test passed.

    Test results stream live. Model outputs are held back: each is a materialization, and one
    may be recorded only once its table is published, after the last test. DuckDB also allows
    one process on the file while dbt writes, so row counts can only be read once dbt is done.
    ``state`` is the warehouse's state as the step read it before dbt: the run has held the
    lease since, so nothing else has changed it.
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
        entries = _freeze(session, run_id, built, pointers, state)
        try:
            wap.publish(session, run_id, entries, context.log.info, state)
        except wap.PublishRefusedError as refused:
            raise Failure(description=str(refused)) from None
        metadata = session.table_metadata(entries)
    for (_, event), model in zip(held, built, strict=True):
        yield event.with_metadata({**event.metadata, **metadata[model.name]})


def _rebuilt_relations(context: AssetExecutionContext) -> set[str]:
    """The workspace names of the models this run's ``dbt build`` rebuilds (its selection).

    dagster-dbt names each model's relation ``database.schema.alias``.
    """
    return {
        spec.metadata["dagster/table_name"].rsplit(".", 1)[-1]
        for spec in context.assets_def.specs
        if spec.key in context.selected_asset_keys
    }


def _stop(dbt: subprocess.Popen) -> None:
    """Make sure dbt has exited, so that it no longer holds the warehouse.

    dagster-dbt forwards an interrupt to dbt only when the interrupt lands while it reads dbt's
    output. Terminate can land anywhere else in the step, in Dagster's own code between two events;
    this step's generator is then closed with dbt still running and holding the DuckDB file.
    """
    if dbt.poll() is not None:
        return
    # SIGINT first: dbt cancels its queries, which a remote engine (Spark) needs to hear about.
    dbt.send_signal(signal.SIGINT)
    try:
        dbt.wait(timeout=DBT_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        dbt.kill()
        dbt.wait()


def _failure_description(invocation: DbtCliInvocation, failed_checks: list[AssetCheckResult]) -> str:
    if failed_checks:
        return wap.failure_summary(failed_checks, "A dbt test")
    error = invocation.get_error()
    reason = str(error).strip() if error else "dbt build failed."
    return f"dbt build failed, so nothing was published: the tables users read are unchanged. {reason}"


@dbt_assets(
    manifest=jaffle_shop_project().manifest_path,
    project=jaffle_shop_project(),
    dagster_dbt_translator=JaffleTranslator(DagsterDbtTranslatorSettings(enable_code_references=True)),
)
def jaffle_shop_dbt_assets(context: AssetExecutionContext, dbt: DbtCliResource, duckdb: Warehouse):
    run_id = context.op_execution_context.run_id
    wap.refuse_unordered_selection(context, RAW_KEYS)
    # Taking the lease and opening the file first turns a lock held by another program into our
    # clear, bounded error instead of dbt's, which arrives only after dbt has parsed and connected.
    wap.begin(context, duckdb)
    invocation = None
    try:
        with duckdb.session() as session:
            state = session.read_state()
            pointers = wap.reset_workspace(session, run_id, _rebuilt_relations(context), state)
        # One folder per warehouse, reused (dagster-dbt would make a new one per run and never
        # remove it): dbt then finds its partial parse of the last run.
        target_path = duckdb.dbt_target_path()
        # The last run's results must never pass for this one's, should dbt stop before writing.
        (target_path / "run_results.json").unlink(missing_ok=True)
        # dbt starts inside cli(), copying os.environ then: the Spark URL is set for that moment.
        with duckdb.dbt_environment():
            invocation = dbt.cli(
                ["build", *duckdb.dbt_vars()],
                context=context,
                target_path=target_path,
                raise_on_error=False,
            )
        yield from build_and_publish(context, invocation, duckdb, pointers, state)
    except BaseException:
        # A failed test, a dbt error, Terminate in the UI: nothing this run built stays, the
        # workspace reads the published data again, and the catalog shows it.
        if invocation is not None:
            _stop(invocation.process)
        with duckdb.session() as session:
            pending = list(session.read_state().pending.get(run_id, {}))
            wap.discard(session, run_id)
            wap.reset_workspace(session, None)
        restore_catalog(context, pending, failed_run_id=run_id)
        raise
