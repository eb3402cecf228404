"""Freshness, owners and tags: what the UI and `dg list defs` show, and the check a user alerts on."""

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckSeverity,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    build_sensor_context,
    materialize,
)
from dagster._core.test_utils import freeze_time

from dagster_project.definitions import defs
from dagster_project.defs.governance import freshness_checks
from dagster_project.settings import REPO_ROOT
from tests.helpers import FILE_ASSETS, PROJECT_ASSETS, VENV_BIN

USER_FACING = ("customers", "orders", "order_count_chart")
# The daily automation's period, and its run an hour late plus a minute: past the fail window.
A_DAY = timedelta(days=1)
AN_HOUR_LATE = A_DAY + timedelta(hours=1, minutes=1)


def materialized_ago(instance: DagsterInstance, age: timedelta, *assets: str) -> None:
    """Record a materialization of each of ``assets``, as if it had been ``age`` ago."""
    with freeze_time(datetime.now(UTC) - age):
        for asset in assets:
            instance.report_runless_asset_event(AssetMaterialization(asset))


def run_freshness_checks(instance: DagsterInstance):
    """A run of the freshness checks alone: what the freshness sensor launches."""
    checks, _ = freshness_checks()
    return materialize(
        checks, selection=AssetSelection.checks(*checks), instance=instance, raise_on_error=False
    )


def outcomes(result) -> dict[str, tuple[bool, AssetCheckSeverity]]:
    return {
        evaluation.asset_key.to_user_string(): (evaluation.passed, evaluation.severity)
        for evaluation in result.get_asset_check_evaluations()
    }


def test_what_the_daily_run_published_a_day_ago_passes_its_freshness_check(instance):
    materialized_ago(instance, A_DAY, *USER_FACING)

    result = run_freshness_checks(instance)

    assert result.success
    assert outcomes(result) == {asset: (True, AssetCheckSeverity.ERROR) for asset in USER_FACING}


def test_a_chart_an_hour_past_the_daily_run_fails_its_check_and_the_check_run(instance):
    materialized_ago(instance, A_DAY, "customers", "orders")
    materialized_ago(instance, AN_HOUR_LATE, "order_count_chart")

    result = run_freshness_checks(instance)

    # The run fails too: a run failure sensor can alert on it.
    assert not result.success
    assert outcomes(result) == {
        "customers": (True, AssetCheckSeverity.ERROR),
        "orders": (True, AssetCheckSeverity.ERROR),
        "order_count_chart": (False, AssetCheckSeverity.ERROR),
    }
    (stale,) = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert stale.description.startswith("Asset is overdue for an update. The last update was 1 day")


def test_a_chart_never_materialized_fails_its_freshness_check(instance):
    materialized_ago(instance, A_DAY, "customers", "orders")

    result = run_freshness_checks(instance)

    assert not result.success
    assert outcomes(result)["order_count_chart"] == (False, AssetCheckSeverity.ERROR)


def test_the_freshness_sensor_requests_the_checks_of_the_marts_and_the_chart(instance):
    sensor = defs.resolve_sensor_def("freshness_checks_sensor")

    result = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))

    (request,) = result.run_requests
    assert sorted(key.asset_key.to_user_string() for key in request.asset_check_keys) == sorted(USER_FACING)


def test_every_schedule_and_sensor_starts_stopped_so_dagster_dev_launches_nothing_unasked():
    statuses = {sensor.name: sensor.default_status for sensor in defs.sensors}
    assert not defs.schedules
    assert statuses == {
        "raw_files_sensor": DefaultSensorStatus.STOPPED,
        "jaffle_automation": DefaultSensorStatus.STOPPED,
        "freshness_checks_sensor": DefaultSensorStatus.STOPPED,
    }


ASSET_NODES = """
query {
  assetNodes {
    assetKey { path }
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    tags { key value }
    internalFreshnessPolicy {
      ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds }
    }
  }
}
"""


def test_the_ui_shows_the_freshness_policy_of_what_users_read_and_every_owner(ui_graphql):
    nodes = {"/".join(node["assetKey"]["path"]): node for node in ui_graphql(ASSET_NODES)["assetNodes"]}

    policies = {asset: node["internalFreshnessPolicy"] for asset, node in nodes.items()}
    # Warn half an hour after the daily run is due, fail an hour after.
    window = {"failWindowSeconds": 25 * 3600, "warnWindowSeconds": 24 * 3600 + 30 * 60}
    assert policies == {
        asset: window if asset in USER_FACING else None for asset in PROJECT_ASSETS + FILE_ASSETS
    }
    assert nodes["order_count_chart"]["owners"] == [{"team": "analytics"}]
    assert nodes["customers"]["owners"] == [{"team": "analytics-engineering"}]
    assert nodes["raw_orders"]["owners"] == [{"team": "data-platform"}]
    assert {"key": "tier", "value": "gold"} in nodes["orders"]["tags"]


def dg_list_defs(project_env) -> dict:
    """`dg list defs --json`, run in the project as a user would: no flag says where the code is."""
    result = subprocess.run(
        [str(VENV_BIN / "dg"), "list", "defs", "--json"],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            **project_env.variables,
            "PATH": os.pathsep.join([str(VENV_BIN), os.environ["PATH"]]),
            "VIRTUAL_ENV": str(VENV_BIN.parent),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    return json.loads(result.stdout)


def test_dg_list_defs_shows_owners_tags_automation_the_freshness_checks_and_the_sensors(project_env):
    listed = dg_list_defs(project_env)

    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert assets["order_count_chart"]["owners"] == [{"team": "analytics"}]
    assert assets["stg_orders"]["owners"] == [{"team": "analytics-engineering"}]
    tags = {asset: {tag["key"]: tag["value"] for tag in assets[asset]["tags"]} for asset in PROJECT_ASSETS}
    assert tags["raw_payments"] == {"domain": "sales", "tier": "bronze"}
    assert tags["stg_payments"] == {"domain": "sales", "tier": "silver"}
    assert tags["customers"] == {"domain": "sales", "tier": "gold"}
    freshness = sorted(
        check["asset_key"] for check in listed["asset_checks"] if check["name"] == "freshness_check"
    )
    assert freshness == sorted(USER_FACING)
    # The policy, in words at the end of the description of each asset that has one.
    policy = "Freshness policy: warns 24 h 30 min and fails 25 h after its last materialization."
    described = sorted(asset for asset in PROJECT_ASSETS if assets[asset]["description"].endswith(policy))
    assert described == sorted(USER_FACING)
    assert assets["order_count_chart"]["description"].startswith("Bar chart of customers by number of orders")
    conditions = {asset: assets[asset]["automation_condition"]["label"] for asset in PROJECT_ASSETS}
    assert conditions["raw_orders"] == "on a new file, and daily at 06:00 UTC"
    assert conditions["order_count_chart"] == "with what it reads, or eager"
    assert {sensor["name"] for sensor in listed["sensors"]} == {
        "raw_files_sensor",
        "jaffle_automation",
        "freshness_checks_sensor",
    }
