"""Who answers for each asset and how fresh users may expect it: owners, tags, freshness policies.

Every value is set here, once, and applied to the assets where they are assembled
(``dagster_project/definitions.py``): the modules that build the assets say what they compute,
this one who answers for them and how fresh users may expect them to be.
"""

import warnings
from collections.abc import Sequence
from datetime import timedelta

from dagster import (
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DefaultSensorStatus,
    FreshnessPolicy,
    SensorDefinition,
    SupersessionWarning,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
    map_asset_specs,
)

# Who to ask about an asset, by its group: the team that loads the files, the team that owns
# the dbt models, and the team that publishes the chart.
OWNERS_BY_GROUP = {
    "ingest": ["team:data-platform"],
    "transform": ["team:analytics-engineering"],
    "report": ["team:analytics"],
}

# What users read: the marts and the chart. They carry the freshness policy and its check.
USER_FACING = {AssetKey("customers"), AssetKey("orders"), AssetKey("order_count_chart")}

# Tags, shown on each asset's page. The tier is the medallion layer: raw files as loaded (bronze),
# cleaned staging models (silver), and what users read (gold).
DOMAIN = "sales"
TIER_BY_GROUP = {"ingest": "bronze", "transform": "silver", "report": "gold"}

# Automation's daily condition (on_cron at 06:00 UTC, defs/automation.py) publishes everything
# once a day, so a healthy mart or chart is at most a day old plus the run's length: about
# 10 minutes at 100 million customers, under a minute at the sample's scale (docs/benchmarks.md).
DAILY_PERIOD = timedelta(days=1)
# Warn when today's run is half an hour late (three times the slowest run measured: it is stuck,
# queued or retrying); fail at an hour late: it failed or never started, and users read
# yesterday's data.
FRESHNESS_POLICY = FreshnessPolicy.time_window(
    warn_window=DAILY_PERIOD + timedelta(minutes=30),
    fail_window=DAILY_PERIOD + timedelta(hours=1),
)


def duration(delta: timedelta) -> str:
    """``delta`` as people write it: "24 h 30 min", "25 h"."""
    hours, seconds = divmod(int(delta.total_seconds()), 3600)
    minutes = seconds // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


# The policy in words, at the end of the asset's description: `dg list defs` (1.13) lists no
# freshness policy of its own, and shows the description.
FRESHNESS_NOTE = (
    f"Freshness policy: warns {duration(FRESHNESS_POLICY.warn_window.to_timedelta())} and fails "
    f"{duration(FRESHNESS_POLICY.fail_window.to_timedelta())} after its last materialization."
)


def tier(spec: AssetSpec) -> str:
    return "gold" if spec.key in USER_FACING else TIER_BY_GROUP[spec.group_name or ""]


def describe(spec: AssetSpec) -> AssetSpec:
    """``spec`` with its owners, tags and, for what users read, the freshness policy."""
    described = spec.merge_attributes(
        owners=OWNERS_BY_GROUP[spec.group_name or ""],
        tags={"domain": DOMAIN, "tier": tier(spec)},
    )
    if spec.key in USER_FACING:
        description = (
            f"{spec.description.rstrip()}\n\n{FRESHNESS_NOTE}" if spec.description else FRESHNESS_NOTE
        )
        return described.replace_attributes(freshness_policy=FRESHNESS_POLICY, description=description)
    return described


def describe_assets(assets: Sequence[AssetsDefinition]) -> list[AssetsDefinition]:
    return list(map_asset_specs(describe, assets))


def freshness_checks() -> tuple[list[AssetChecksDefinition], SensorDefinition]:
    """A check per user-facing asset that fails once it is older than the policy's fail window,
    and the sensor that runs the checks when one may have become overdue.

    The policy alone shows freshness in the UI, but in open-source Dagster nothing can alert on
    it. A failed check can: it is blocking and of severity ERROR, so the check's run fails and a
    run failure sensor (Slack, email) hears of it. The sensor launches a check only when it
    could have turned overdue since it last passed, and never again after it failed: the next
    run that materializes the asset runs its check too. It starts stopped, like the automation sensors.

    Dagster marks these two functions superseded by freshness policies, which cannot alert
    without Dagster+, and warns on every call: silenced here alone, as `make run` and the
    README's commands promise to print no warning.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        checks = build_last_update_freshness_checks(
            assets=sorted(USER_FACING),
            lower_bound_delta=FRESHNESS_POLICY.fail_window.to_timedelta(),
            severity=AssetCheckSeverity.ERROR,
            blocking=True,
        )
        sensor = build_sensor_for_freshness_checks(
            freshness_checks=checks, default_status=DefaultSensorStatus.STOPPED
        )
    return list(checks), sensor
