"""What the current run will do after the step that asks: the one fact publishing depends on."""

from dagster import AssetExecutionContext

# The op of ``@dbt_assets`` (dagster_project/defs/transform.py): named here rather than imported,
# so the raw assets do not load the dbt manifest.
DBT_OP_NAME = "jaffle_shop_dbt_assets"


def publishes_after_dbt(context: AssetExecutionContext) -> bool:
    """Whether this run goes on to build dbt models, which then publish everything together.

    The run's job is already cut down to the selection (Materialize selected, a subset job), so
    its graph holds the dbt op exactly when some dbt model is to be built.
    """
    return context.job_def.graph.has_node_named(DBT_OP_NAME)
