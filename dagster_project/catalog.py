"""Keeping Dagster's asset catalog in step with what is published, when a run fails late.

Dagster records an asset's materialization when its step yields it, and the raw step must yield
before the dbt step can start. So when a run loads raw files and then a dbt test fails, the raw
assets already show a materialization of data that was never published. ``restore_catalog``
records, in the same run, a materialization that restates the last published one (its metadata
and data version), so the latest materialization of every asset is again the published data,
and nothing downstream turns stale for data nobody can read.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetCheckResult, AssetExecutionContext, AssetKey, AssetMaterialization


def failure_summary(results: Iterable[AssetCheckResult], what: str) -> str:
    """The run's failure message: which checks failed on which asset, and what was kept."""
    lines = [
        f"- {result.asset_key.to_user_string()}: {result.check_name}. {result.description or ''}".rstrip()
        for result in results
    ]
    return (
        f"{what} failed, so nothing was published: the tables users read and the chart are "
        "unchanged.\n" + "\n".join(lines)
    )


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
