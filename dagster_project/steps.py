"""How every step that writes the warehouse begins, and what it undoes when the run fails.

A step first takes the run's hold on the warehouse, then repairs what a run that died left
behind: its unpublished tables in the build schema, and the materializations its raw step had
already recorded for them. When the run fails, the step puts back what this run wrote and
restates the catalog the same way, so the warehouse and the catalog both show the last publish.
"""

from dagster import AssetExecutionContext

from dagster_project.catalog import restore_catalog
from dagster_project.warehouse import Warehouse


def begin(context: AssetExecutionContext, duckdb: Warehouse) -> None:
    run_id = context.op_execution_context.run_id
    duckdb.hold_for_run(run_id, context.log.info)
    with duckdb.session() as session:
        left_behind = session.start(run_id)
    for dead_run, names in left_behind.items():
        context.log.info(
            f"Run {dead_run[:8]} ended without publishing or cleaning up; restored {', '.join(names)} "
            "in the build schema to the published data."
        )
        restore_catalog(context, names, failed_run_id=dead_run)


def abandon(context: AssetExecutionContext, duckdb: Warehouse) -> None:
    """Undo this run's unpublished writes, in the warehouse and in the catalog."""
    run_id = context.op_execution_context.run_id
    with duckdb.session() as session:
        names = session.discard(run_id)
    restore_catalog(context, names, failed_run_id=run_id)
