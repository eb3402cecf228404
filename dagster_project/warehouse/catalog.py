"""Keeping Dagster's asset catalog in step with what is published, when a run fails late.

Dagster starts a step only once the outputs of the steps it depends on are yielded, and
yielding an asset's output records its materialization. So in a run that loads raw files and
rebuilds the models that read them, the raw step must record its materializations before the
dbt step can start, although the dbt step publishes the raw tables (after the dbt tests). When
the dbt step then fails, or the run dies, the raw assets show a materialization of data that
was never published: ``restore_catalog`` records one that restates the last published one
(its metadata and data version), so the latest materialization of every asset is again the
published data. It is the one place the catalog is corrected; a raw step that publishes by
itself, and the dbt step, record a materialization only once its data is published.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetExecutionContext, AssetKey, AssetMaterialization


def restore_catalog(context: AssetExecutionContext, asset_names: Iterable[str], failed_run_id: str) -> None:
    """Restate the last published materialization of each asset ``failed_run_id`` recorded but did not publish."""
    instance = context.instance
    run_id = failed_run_id
    for name in asset_names:
        key = AssetKey(name)
        records = instance.fetch_materializations(key, limit=20).records
        # Only when the failed run's materialization is the latest: a later publish has already
        # put the catalog right.
        if not records or records[0].run_id != run_id:
            continue
        previous = next((record for record in records if record.run_id != run_id), None)
        if previous is None:
            # Never published before this run: no materialization of it may stand.
            instance.wipe_assets([key])
            context.log.info(f"{name} was never published; removed run {run_id[:8]}'s materialization of it.")
            continue
        materialization = previous.asset_materialization
        context.log_event(
            AssetMaterialization(
                asset_key=key,
                description=f"Unchanged: run {run_id[:8]} failed before publishing, so "
                f"{name} is still the data of run {previous.run_id[:8]}.",
                metadata={**materialization.metadata, "published_by_run": previous.run_id},
                tags=materialization.tags,
            )
        )
