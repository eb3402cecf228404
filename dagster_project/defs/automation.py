"""The job, its daily schedule, and a sensor that reruns it when a raw file changes.

Both start STOPPED: `dagster dev` with the daemon would otherwise launch runs that nobody
asked for, writing to the DuckDB file someone is exploring. Turn them on in the UI
(Automation) or with `dagster schedule start` / `dagster sensor start`.
"""

import hashlib
import json

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from dagster_project.data_source import DataSource
from dagster_project.raw_load import RAW_TABLES

RAW_FILES = tuple(table.file_name for table in RAW_TABLES)

jaffle_shop_job = define_asset_job(
    "jaffle_shop_job",
    selection=AssetSelection.all(),
    description="Load the raw CSVs, run dbt build, and redraw the chart.",
)


def missing_files(data_source: DataSource) -> list[str]:
    present = set(data_source.list_files())
    return [name for name in RAW_FILES if name not in present]


def combined_fingerprint(fingerprints: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(fingerprints, sort_keys=True).encode()).hexdigest()


@schedule(
    job=jaffle_shop_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every day at 06:00 UTC, when all three raw files are there.",
)
def daily_jaffle_shop_schedule(context: ScheduleEvaluationContext, data_source: DataSource):
    if missing := missing_files(data_source):
        return SkipReason(f"Not running: the data source has no {', '.join(missing)}.")
    return RunRequest(tags={"jaffle/trigger": "schedule"})


@sensor(
    job=jaffle_shop_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Runs the job when the content of a raw CSV file changes.",
)
def raw_files_sensor(context: SensorEvaluationContext, data_source: DataSource):
    if missing := missing_files(data_source):
        return SkipReason(f"Waiting for {', '.join(missing)} in the data source.")
    fingerprints = {name: data_source.fingerprint(name) for name in RAW_FILES}
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = [name for name in RAW_FILES if previous.get(name) != fingerprints[name]]
    if not changed:
        return SkipReason("No raw file changed since the last run request.")
    # The run key is the content: the same files never trigger twice, even if the cursor is reset.
    request = RunRequest(
        run_key=combined_fingerprint(fingerprints),
        tags={"jaffle/trigger": "raw_files_sensor", "jaffle/changed": ",".join(changed)},
    )
    # Returned rather than set on the context, so a test can pass it to the next evaluation.
    return SensorResult(run_requests=[request], cursor=json.dumps(fingerprints))
