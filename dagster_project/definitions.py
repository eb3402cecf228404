"""The one entry point: everything Dagster loads is assembled here."""

import warnings

from dagster_project.heap import long_lived, skip_collection_at_exit

# What is imported and built here lives as long as the process (a CLI, a code server, a run):
# made with the collector paused, then frozen, so that no pass walks it again (dagster_project/heap.py).
with long_lived():
    from dagster import (
        BetaWarning,
        Definitions,
        in_process_executor,
        map_asset_specs,
        with_source_code_references,
    )

    from dagster_project.defs.automation import automate, jaffle_automation, jaffle_shop_job
    from dagster_project.defs.governance import describe, describe_assets, freshness_checks
    from dagster_project.defs.ingest.assets import raw_tables
    from dagster_project.defs.ingest.files import raw_files, raw_files_sensor
    from dagster_project.defs.report import order_count_chart
    from dagster_project.defs.resources import build_resources
    from dagster_project.defs.transform.assets import jaffle_shop_dbt_assets
    from dagster_project.instance import warm_worker
    from dagster_project.settings import Settings, load_settings


def build_defs(settings: Settings) -> Definitions:
    """The definitions for one environment; tests build their own with temporary paths."""
    # Each asset links to the file and line that define it in the UI (a dbt model to its SQL
    # file too, from dagster-dbt). The API is beta, and Dagster warns so on every load: silenced
    # here alone, as `make run` and the README's commands promise to print no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        assets = with_source_code_references([raw_tables, jaffle_shop_dbt_assets, order_count_chart])
    checks, freshness_sensor = freshness_checks()
    return Definitions(
        # Owners, tags and freshness policies (dagster_project/defs/governance.py), and when
        # each asset runs by itself (dagster_project/defs/automation.py).
        assets=[*map_asset_specs(describe, raw_files), *map_asset_specs(automate, describe_assets(assets))],
        asset_checks=checks,
        jobs=[jaffle_shop_job],
        sensors=[raw_files_sensor, jaffle_automation, freshness_sensor],
        resources=build_resources(settings),
        # DuckDB has one writer, so parallel steps buy nothing, and a subprocess per step costs
        # a Python start-up each: every step runs in the run's own process.
        executor=in_process_executor,
    )


with long_lived():
    settings = load_settings()
    defs = build_defs(settings)
# Every process that loads the definitions is Dagster's own (its CLI, a code server, a run), so
# this is the one place to spare each of them about a second of exit (dagster_project/heap.py).
skip_collection_at_exit()
# In a code server (`make run`, `make serve`), its runs fork from a warm worker.
if settings.warm_worker and warm_worker.in_code_server():
    warm_worker.enable()
