"""The job, its daily schedule, and a sensor that runs it until the raw files are published.

Both start STOPPED: `dagster dev` with the daemon would otherwise launch runs that nobody
asked for, writing to the DuckDB file someone is exploring. Turn them on in the UI
(Automation) or with `dagster schedule start` / `dagster sensor start`.

The sensor, on each tick (every 30 s):

1. Stats each raw file (size, modification time) without opening it. A file is hashed only
   once its stat has held still from one tick to the next and differs from the stat it was
   last hashed at; a tick where nothing changed reads no file contents (at 10 million
   customers, 13 to 18 ms a tick, against 1.4 s to hash the three files). Until a changed
   file holds still, the sensor waits, so a run never loads a half-written file.
2. Compares the hashes with ``source_sha256`` of each raw asset's latest materialization:
   the files that were last published (a materialization still pending publication counts only
   while its run is in flight or once it succeeded: a run killed before its dbt step published
   left files that are not published). If they match, there is nothing to do.
3. While a run of the job is queued or running, waits for it to end: never two runs at once.
4. Otherwise it looks at its own latest run for these exact files (tag ``jaffle/content``):

   - none, or it succeeded and the files have changed back since: requests a run;
   - it failed on the data (a failed blocking check or dbt test, a file that does not
     parse): no retry, as the same files would fail the same way. Any change to a file
     brings a new run; after fixing a check instead, materialize by hand;
   - it was canceled: no retry, as someone stopped it on purpose. Materialize by hand;
   - it failed for another reason (the DuckDB file locked by another program, the run's
     process killed): retries after 2, 4, 8, 16 and 32 minutes, then hourly.

The back-off is the only way the sensor learns that a lock is gone: opening the DuckDB file
to find out, even read-only, would itself lock out the program the user is working in.
"""

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    EventLogEntry,
    RunRecord,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from dagster_project.csv_errors import RawFileError
from dagster_project.data_source import DataSource, FileStat
from dagster_project.defs.ingest import PENDING
from dagster_project.raw_load import RAW_TABLES

RAW_FILES = tuple(table.file_name for table in RAW_TABLES)
_TABLE_OF_FILE = {table.file_name: table.name for table in RAW_TABLES}

CONTENT_TAG = "jaffle/content"

FIRST_RETRY_DELAY = timedelta(minutes=2)
LONGEST_RETRY_DELAY = timedelta(hours=1)
# Failed runs in a row beyond this many add nothing: the sixth delay is already the longest.
_COUNTED_FAILURES = 6

# CANCELING is in flight too: the run still holds the DuckDB file until it has stopped.
_IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]

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


# The sensor.


@dataclass(frozen=True)
class WatchedFile:
    """A raw file as the sensor last saw it. The cursor holds one per file, as JSON."""

    seen: FileStat
    hashed: FileStat | None = None
    sha256: str | None = None

    @property
    def settled(self) -> bool:
        """The hash is of the file as it is now, taken after it held still for a tick."""
        return self.hashed == self.seen


def watch(data_source: DataSource, name: str, previous: WatchedFile | None) -> WatchedFile:
    """The file's state this tick; hashes it only if it changed and has since held still."""
    stat = data_source.stat(name)
    if previous is None:
        return WatchedFile(seen=stat)
    if stat == previous.seen != previous.hashed:
        return WatchedFile(seen=stat, hashed=stat, sha256=data_source.fingerprint(name))
    # Unchanged since it was hashed, or still changing: then the old hash no longer counts
    # (``settled`` is false) and the file is looked at again next tick.
    return replace(previous, seen=stat)


def read_cursor(cursor: str | None) -> dict[str, WatchedFile]:
    entries = json.loads(cursor) if cursor else {}
    # A cursor from before the sensor stat-ed files maps names to bare hashes: start afresh.
    return {
        name: WatchedFile(
            seen=FileStat(*entry["seen"]),
            hashed=FileStat(*entry["hashed"]) if entry["hashed"] else None,
            sha256=entry["sha256"],
        )
        for name, entry in entries.items()
        if isinstance(entry, dict)
    }


def write_cursor(files: dict[str, WatchedFile]) -> str:
    return json.dumps({name: asdict(file) for name, file in files.items()}, separators=(",", ":"))


def latest_materializations(instance: DagsterInstance) -> dict[str, EventLogEntry | None]:
    # One query for the three assets: on SQLite storage a query costs 5 to 20 ms, most of a
    # no-change tick (get_latest_materialization_event per asset took three times as long).
    records = instance.get_asset_records([AssetKey(_TABLE_OF_FILE[name]) for name in RAW_FILES])
    latest = {record.asset_entry.asset_key: record.asset_entry.last_materialization for record in records}
    return {name: latest.get(AssetKey(_TABLE_OF_FILE[name])) for name in RAW_FILES}


def published_sha256(instance: DagsterInstance, event: EventLogEntry | None) -> str | None:
    """The hash of the file behind the asset's latest materialization, if that data is published.

    A run that loads raw files and rebuilds the models reading them records the raw tables as
    pending before its dbt step publishes them. If that run then died (its worker killed), no
    step was left to put the catalog right, so its pending hashes are not the published ones:
    the files are unpublished and the run is retried.
    """
    materialization = event.asset_materialization if event else None
    if materialization is None or "source_sha256" not in materialization.metadata:
        return None
    published = materialization.metadata.get("published")
    if published is not None and published.value == PENDING:
        run = instance.get_run_by_id(event.run_id)
        if run is None or run.status not in (*_IN_FLIGHT, DagsterRunStatus.SUCCESS):
            return None
    return materialization.metadata["source_sha256"].value


def run_in_flight(instance: DagsterInstance) -> DagsterRun | None:
    # Any job's run: Materialize all in the UI runs as __ASSET_JOB, not jaffle_shop_job, and
    # every run of this project takes the warehouse in turn anyway.
    records = instance.get_run_records(RunsFilter(statuses=_IN_FLIGHT), limit=1)
    return records[0].dagster_run if records else None


def retry_delay(failures: int) -> timedelta:
    """How long to wait after ``failures`` failed runs in a row for the same files."""
    return min(FIRST_RETRY_DELAY * 2 ** (failures - 1), LONGEST_RETRY_DELAY)


@dataclass(frozen=True)
class Diagnosis:
    on_the_data: bool
    reason: str


def _first_line(message: str) -> str:
    lines = message.strip().splitlines()
    # Dagster's error text starts with the qualified class name: "pkg.module.Error: what".
    return re.sub(r"^[\w.]+: ", "", lines[0]) if lines else ""


def diagnose(instance: DagsterInstance, run_id: str) -> Diagnosis:
    """Whether a failed run failed on its input (so the same files would fail again), and why."""
    events = instance.all_logs(
        run_id,
        of_type={
            DagsterEventType.ASSET_CHECK_EVALUATION,
            DagsterEventType.STEP_FAILURE,
            DagsterEventType.RUN_FAILURE,
        },
    )
    step_errors = []
    run_failure = ""
    for event in events:
        dagster_event = event.dagster_event
        if dagster_event is None:
            continue
        if dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = dagster_event.event_specific_data
            if not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR:
                asset = evaluation.asset_key.to_user_string()
                return Diagnosis(True, f"the check {evaluation.check_name} on {asset} failed.")
        elif dagster_event.event_type == DagsterEventType.STEP_FAILURE:
            error = dagster_event.step_failure_data.error
            # The step's error wraps the one raised in our code; that one says what happened.
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                step_errors.append(error)
        else:
            run_failure = dagster_event.message or ""
    for error in step_errors:
        if error.cls_name == RawFileError.__name__:
            return Diagnosis(True, _first_line(error.message))
    if step_errors:
        return Diagnosis(False, _first_line(step_errors[0].message))
    return Diagnosis(False, _first_line(run_failure) or "no error was recorded.")


def _consecutive_failures(history: list[RunRecord]) -> int:
    count = 0
    for record in history:
        if record.dagster_run.status != DagsterRunStatus.FAILURE:
            break
        count += 1
    return count


def _ended_at(record: RunRecord) -> float:
    return record.end_time if record.end_time is not None else record.update_timestamp.timestamp()


def _short(run: DagsterRun) -> str:
    return run.run_id[:8]


def _request(tags: dict[str, str]) -> RunRequest:
    # No run key: Dagster launches a run key only once, even when that run failed, so a key
    # would block every retry. The in-flight check is what keeps a second run away.
    return RunRequest(tags=tags)


def next_run(instance: DagsterInstance, hashes: dict[str, str]) -> RunRequest | SkipReason:
    """What to do about files whose hashes are settled: see the module's docstring."""
    published = latest_materializations(instance)
    differing = [name for name in RAW_FILES if published_sha256(instance, published[name]) != hashes[name]]
    if not differing:
        return SkipReason("The raw files are the ones last published: nothing to run.")
    changed = ", ".join(differing)
    if (run := run_in_flight(instance)) is not None:
        return SkipReason(
            f"{changed} differ from the published data; waiting for run {_short(run)} "
            f"({run.status.value.lower()}) to end before requesting another."
        )
    content = combined_fingerprint(hashes)
    history = instance.get_run_records(
        RunsFilter(job_name=jaffle_shop_job.name, tags={CONTENT_TAG: content}), limit=_COUNTED_FAILURES
    )
    tags = {"jaffle/trigger": "raw_files_sensor", "jaffle/changed": ",".join(differing), CONTENT_TAG: content}
    if not history:
        return _request(tags)
    latest = history[0].dagster_run
    if latest.status == DagsterRunStatus.SUCCESS:
        if any(published[name] is not None and published[name].run_id == latest.run_id for name in differing):
            # Without this, a run whose asset records another hash than the sensor's would be
            # followed by an identical run forever.
            return SkipReason(
                f"Run {_short(latest)} loaded these files and succeeded, yet its materialization "
                f"of {changed} records another source_sha256 than the sensor's hash: the raw "
                "assets and DataSource.fingerprint disagree. Not requesting another run."
            )
        return _request(tags)
    if latest.status == DagsterRunStatus.CANCELED:
        return SkipReason(
            f"Run {_short(latest)} for these files was canceled; not retrying them. "
            "Change a file, or materialize by hand."
        )
    failure = diagnose(instance, latest.run_id)
    if failure.on_the_data:
        return SkipReason(
            f"Run {_short(latest)} failed on these files: {failure.reason} Not retrying the same "
            f"files: fix {changed}, and the sensor runs the job once the change has settled."
        )
    failures = _consecutive_failures(history)
    due = _ended_at(history[0]) + retry_delay(failures).total_seconds()
    if time.time() < due:
        at = datetime.fromtimestamp(due, UTC).strftime("%H:%M:%S UTC")
        return SkipReason(
            f"Run {_short(latest)} for these files failed: {failure.reason} Retrying at {at} "
            f"(after {failures} failed run(s)); materialize by hand to retry sooner."
        )
    return _request({**tags, "jaffle/retry_of": latest.run_id})


@sensor(
    job=jaffle_shop_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Runs the job when the raw CSV files differ from the ones last published, "
    "once they have stopped changing; retries a run that failed on something other than the data.",
)
def raw_files_sensor(context: SensorEvaluationContext, data_source: DataSource):
    if missing := missing_files(data_source):
        return SkipReason(f"Waiting for {', '.join(missing)} in the data source.")
    previous = read_cursor(context.cursor)
    files = {name: watch(data_source, name, previous.get(name)) for name in RAW_FILES}
    # Returned rather than set on the context, so a test can pass it to the next evaluation.
    cursor = write_cursor(files)
    if changing := [name for name, file in files.items() if not file.settled]:
        return SensorResult(
            skip_reason=f"Waiting for {', '.join(changing)} to hold still: a file is read once "
            "its size and modification time are the same on two ticks.",
            cursor=cursor,
        )
    outcome = next_run(context.instance, {name: file.sha256 for name, file in files.items()})
    if isinstance(outcome, SkipReason):
        return SensorResult(skip_reason=outcome, cursor=cursor)
    return SensorResult(run_requests=[outcome], cursor=cursor)
