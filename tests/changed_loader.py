"""The project as it would be after a developer changed the raw loader and bumped its version."""

from dagster import Definitions

from dagster_project.defs import ingest

NEW_LOADER_VERSION = "2"


def with_rebuilt_raw_orders(defs: Definitions) -> Definitions:
    """``defs`` with raw_orders built again from ``ingest`` as it is now (set the version first)."""
    changed_raw_orders = ingest.build_raw_asset(ingest.RAW_TABLES[1])
    original_raw_orders = ingest.raw_assets[1]
    return Definitions(
        assets=[changed_raw_orders, *(a for a in defs.assets if a is not original_raw_orders)],
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
    )
