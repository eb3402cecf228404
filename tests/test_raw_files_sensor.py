"""The raw-files sensor, tick by tick, against a real Dagster instance.

Each test writes the history the sensor reads (runs and what they published) into a temporary
instance with Dagster's public API, runs the sensor's ticks as the daemon would (the cursor one
tick returns goes into the next), and checks the run requests and skip messages a user sees
under Automation. A stand-in job named ``jaffle_shop_job`` plays the project's job, so a run
ends in the outcome a test needs in a fraction of a second; the last test runs the real job.
"""

import builtins
import hashlib
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    MaterializeResult,
    RunRequest,
    SensorResult,
    asset,
    build_sensor_context,
    define_asset_job,
    multi_asset,
)

from dagster_project.csv_errors import RawFileError
from dagster_project.data_source import DataSource, LocalDataSource
from dagster_project.defs import automation
from dagster_project.defs.automation import (
    CONTENT_TAG,
    RAW_FILES,
    combined_fingerprint,
    raw_files_sensor,
    retry_delay,
)
from dagster_project.defs.ingest import PENDING, RAW_TABLES
from tests.mocks import InMemoryDataSource

GOOD = {
    "raw_customers.csv": "id,first_name,last_name\n1,Ada,L.\n",
    "raw_orders.csv": "id,user_id,order_date,status\n1,1,2024-01-02,placed\n",
    "raw_payments.csv": "id,order_id,payment_method,amount\n1,1,coupon,500\n",
}
BAD = {**GOOD, "raw_orders.csv": GOOD["raw_orders.csv"].replace("placed", "lost")}
NEWER = {**GOOD, "raw_orders.csv": GOOD["raw_orders.csv"] + "2,1,2024-01-03,shipped\n"}

WORKER_KILLED = "The run worker exited unexpectedly (SIGKILL)."
LOCKED = "The DuckDB file /data/jaffle.duckdb is locked by /usr/bin/duckdb (PID 4242); gave up after 14 s."


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hashes(files: dict[str, str]) -> dict[str, str]:
    return {name: sha256(text) for name, text in files.items()}


class Sensor:
    """Ticks of the sensor, each one handed the cursor the previous tick returned."""

    def __init__(self, instance: DagsterInstance, data_source: DataSource):
        self.instance = instance
        self.data_source = data_source
        self.cursor: str | None = None

    def put(self, files: dict[str, str]) -> None:
        """The in-memory files become ``files``, as if new objects had been uploaded."""
        self.data_source = InMemoryDataSource(files=files, spool_dir=self.data_source.spool_dir)

    def tick(self) -> SensorResult:
        context = build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = raw_files_sensor(context, data_source=self.data_source)
        if isinstance(result, SensorResult):
            self.cursor = result.cursor or self.cursor
            return result
        return SensorResult(skip_reason=result)

    def settle(self) -> SensorResult:
        """The second of two ticks: files that held still between them are read and compared."""
        self.tick()
        return self.tick()

    def request(self) -> RunRequest:
        [request] = self.settle().run_requests
        return request

    def skip_message(self) -> str:
        result = self.tick()
        assert not result.run_requests, f"expected no run request, got {result.run_requests}"
        return result.skip_reason.skip_message


class History:
    """Runs of a stand-in ``jaffle_shop_job`` recorded in the instance, ending as told.

    A run that succeeds publishes each raw file's hash as ``source_sha256``, as the raw assets
    do. A failed run publishes nothing (write-audit-publish), unless ``publishes`` says
    otherwise (the project before write-audit-publish).
    """

    def __init__(self, instance: DagsterInstance):
        self.instance = instance

    def published(self, file_hashes: dict[str, str]) -> None:
        for table in RAW_TABLES:
            self.instance.report_runless_asset_event(
                AssetMaterialization(table.name, metadata={"source_sha256": file_hashes[table.file_name]})
            )

    def run(self, request: RunRequest, files: dict[str, str], outcome: str, publishes: bool = False) -> str:
        assets = [stand_in_raw_assets(hashes(files), outcome, publishes or outcome == "succeeds")]
        if outcome == "dies before publishing":
            assets.append(dying_dbt_step)
        job = Definitions(assets=assets, jobs=[define_asset_job("jaffle_shop_job")]).resolve_job_def(
            "jaffle_shop_job"
        )
        if outcome in (
            "succeeds",
            "fails a check",
            "has a bad file",
            "finds the file locked",
            "dies before publishing",
        ):
            result = job.execute_in_process(instance=self.instance, tags=request.tags, raise_on_error=False)
            assert result.success == (outcome == "succeeds")
            return result.run_id
        status = DagsterRunStatus.NOT_STARTED if outcome == "waits to start" else DagsterRunStatus.STARTED
        run = self.instance.create_run_for_job(job, tags=request.tags, status=status)
        if outcome == "worker dies":
            self.instance.report_run_failed(run, WORKER_KILLED)
        elif outcome == "is canceled":
            self.instance.report_run_canceled(run)
        else:
            assert outcome in ("waits to start", "keeps running")
        return run.run_id

    def ended_at(self, run_id: str) -> float:
        return self.instance.get_run_record_by_id(run_id).end_time


def stand_in_raw_assets(file_hashes: dict[str, str], outcome: str, publishes: bool):
    @multi_asset(
        specs=[AssetSpec(table.name, skippable=True) for table in RAW_TABLES],
        check_specs=[AssetCheckSpec("status_is_accepted", asset="raw_orders", blocking=True)],
    )
    def raw_tables():
        if outcome == "finds the file locked":
            raise RuntimeError(LOCKED)
        if outcome == "has a bad file":
            raise RawFileError("raw_orders.csv, line 2: column 3 (order_date) holds '2024-13-45'.")
        if publishes or outcome == "dies before publishing":
            # As the raw step records tables that its run's dbt step is to publish.
            published = PENDING if outcome == "dies before publishing" else "yes"
            for table in RAW_TABLES:
                yield MaterializeResult(
                    asset_key=table.name,
                    metadata={"source_sha256": file_hashes[table.file_name], "published": published},
                )
        yield AssetCheckResult(
            asset_key="raw_orders",
            check_name="status_is_accepted",
            passed=outcome != "fails a check",
            severity=AssetCheckSeverity.ERROR,
        )

    return raw_tables


@asset(deps=[table.name for table in RAW_TABLES])
def dying_dbt_step():
    """Stands for a dbt step whose worker is killed before it publishes the pending raw tables."""
    raise RuntimeError(WORKER_KILLED)


@pytest.fixture
def sensor(instance, tmp_path) -> Sensor:
    """The sensor watching the good files, held in memory as an object store would hold them."""
    return Sensor(instance, InMemoryDataSource(files=GOOD, spool_dir=str(tmp_path)))


@pytest.fixture
def history(instance) -> History:
    return History(instance)


@pytest.fixture
def no_back_off(monkeypatch):
    """As if the back-off had passed: the sensor may retry at once."""
    monkeypatch.setattr(automation, "FIRST_RETRY_DELAY", timedelta(0))


# New and changed files.


def test_new_files_are_read_once_they_hold_still_then_a_run_is_requested(sensor):
    first = sensor.tick()
    assert first.skip_reason.skip_message == (
        "Waiting for raw_customers.csv, raw_orders.csv, raw_payments.csv to hold still: "
        "a file is read once its size and modification time are the same on two ticks."
    )
    [request] = sensor.tick().run_requests
    assert request.run_key is None
    assert request.tags == {
        "jaffle/trigger": "raw_files_sensor",
        "jaffle/changed": "raw_customers.csv,raw_orders.csv,raw_payments.csv",
        CONTENT_TAG: combined_fingerprint(hashes(GOOD)),
    }


def test_files_that_match_the_published_ones_request_nothing(sensor, history):
    history.published(hashes(GOOD))
    assert sensor.settle().skip_reason.skip_message == (
        "The raw files are the ones last published: nothing to run."
    )


def test_a_changed_file_requests_a_run_naming_it(sensor, history):
    history.published(hashes(GOOD))
    sensor.settle()
    sensor.put(NEWER)
    assert sensor.skip_message().startswith("Waiting for raw_orders.csv to hold still")
    [request] = sensor.tick().run_requests
    assert request.tags["jaffle/changed"] == "raw_orders.csv"


def test_a_file_that_changes_on_every_tick_never_starts_a_run(sensor):
    sensor.settle()
    for rows in range(2, 6):
        sensor.put({**GOOD, "raw_payments.csv": GOOD["raw_payments.csv"] * rows})
        assert sensor.skip_message().startswith("Waiting for raw_payments.csv to hold still")


def test_the_sensor_waits_for_a_missing_file(sensor):
    sensor.put({name: text for name, text in GOOD.items() if name != "raw_payments.csv"})
    assert sensor.skip_message() == "Waiting for raw_payments.csv in the data source."


def test_a_cursor_from_the_content_hash_sensor_starts_afresh(sensor):
    sensor.cursor = '{"raw_customers.csv": "0a1b", "raw_orders.csv": "2c3d", "raw_payments.csv": "4e5f"}'
    assert sensor.skip_message().startswith("Waiting for raw_customers.csv, raw_orders.csv, raw_payments.csv")
    assert sensor.tick().run_requests


# Runs in flight.


# A QUEUED run needs the daemon's code location to be created; NOT_STARTED is the state before.
@pytest.mark.parametrize(
    ("outcome", "status"), [("waits to start", "not_started"), ("keeps running", "started")]
)
def test_no_second_run_is_requested_while_one_is_queued_or_running(sensor, history, outcome, status):
    run_id = history.run(sensor.request(), GOOD, outcome)
    waiting = f"waiting for run {run_id[:8]} ({status}) to end before requesting another."
    assert sensor.skip_message() == (
        f"raw_customers.csv, raw_orders.csv, raw_payments.csv differ from the published data; {waiting}"
    )
    sensor.put(NEWER)
    sensor.tick()
    assert sensor.skip_message().endswith(waiting)


def test_after_a_successful_run_nothing_more_is_requested(sensor, history):
    history.run(sensor.request(), GOOD, "succeeds")
    assert sensor.skip_message() == "The raw files are the ones last published: nothing to run."


def changed_back_to_good(sensor, history):
    """GOOD then NEWER both succeed, then the files change back to GOOD: the sensor's request."""
    history.run(sensor.request(), GOOD, "succeeds")
    sensor.put(NEWER)
    history.run(sensor.request(), NEWER, "succeeds")
    sensor.put(dict(GOOD))
    [request] = sensor.settle().run_requests
    return request


def test_files_changed_back_to_ones_that_succeeded_before_are_run_again(sensor, history):
    request = changed_back_to_good(sensor, history)
    assert request.tags[CONTENT_TAG] == combined_fingerprint(hashes(GOOD))


def test_a_run_that_publishes_other_hashes_than_the_sensors_is_not_repeated(sensor, history):
    request = sensor.request()
    run_id = history.run(request, {**GOOD, "raw_orders.csv": "something else"}, "succeeds")
    assert sensor.skip_message() == (
        f"Run {run_id[:8]} loaded these files and succeeded, yet its materialization of "
        "raw_orders.csv records another source_sha256 than the sensor's hash: the raw assets and "
        "DataSource.fingerprint disagree. Not requesting another run."
    )


# Failed runs: no retry on bad data, a retry with back-off otherwise.


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("fails a check", "the check status_is_accepted on raw_orders failed."),
        ("has a bad file", "raw_orders.csv, line 2: column 3 (order_date) holds '2024-13-45'."),
    ],
)
def test_a_run_that_failed_on_the_data_is_not_retried_until_a_file_changes(
    sensor, history, no_back_off, outcome, reason
):
    history.published(hashes(GOOD))
    sensor.put(BAD)
    run_id = history.run(sensor.request(), BAD, outcome)
    message = (
        f"Run {run_id[:8]} failed on these files: {reason} Not retrying the same files: fix "
        "raw_orders.csv, and the sensor runs the job once the change has settled."
    )
    assert sensor.skip_message() == message
    assert sensor.skip_message() == message
    sensor.put(NEWER)
    [request] = sensor.settle().run_requests
    assert request.tags["jaffle/changed"] == "raw_orders.csv"


@pytest.mark.parametrize("publishes", [False, True], ids=["write-audit-publish", "failed run loads"])
def test_good_then_bad_then_good_files_end_with_the_good_ones_published(sensor, history, instance, publishes):
    history.run(sensor.request(), GOOD, "succeeds")
    sensor.put(BAD)
    history.run(sensor.request(), BAD, "fails a check", publishes=publishes)
    assert not sensor.tick().run_requests
    sensor.put(dict(GOOD))
    result = sensor.settle()
    if publishes:
        # The failed run left the bad file's rows in place: the good files are loaded again.
        [request] = result.run_requests
        assert request.tags["jaffle/changed"] == "raw_orders.csv"
        history.run(request, GOOD, "succeeds")
    published = instance.get_latest_materialization_event(AssetKey("raw_orders"))
    assert published.asset_materialization.metadata["source_sha256"].value == sha256(GOOD["raw_orders.csv"])
    assert sensor.skip_message() == "The raw files are the ones last published: nothing to run."


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("finds the file locked", LOCKED),
        ("worker dies", WORKER_KILLED),
        # Its raw tables were recorded as pending: the files were never published.
        ("dies before publishing", WORKER_KILLED),
    ],
)
def test_a_run_that_failed_for_another_reason_is_retried_after_a_back_off(
    sensor, history, monkeypatch, outcome, reason
):
    run_id = history.run(sensor.request(), GOOD, outcome)
    retry_at = datetime.fromtimestamp(history.ended_at(run_id) + 120, UTC).strftime("%H:%M:%S UTC")
    assert sensor.skip_message() == (
        f"Run {run_id[:8]} for these files failed: {reason} Retrying at {retry_at} "
        "(after 1 failed run(s)); materialize by hand to retry sooner."
    )
    monkeypatch.setattr(automation, "FIRST_RETRY_DELAY", timedelta(0))
    [retry] = sensor.tick().run_requests
    assert retry.tags["jaffle/retry_of"] == run_id
    assert retry.tags[CONTENT_TAG] == combined_fingerprint(hashes(GOOD))
    # The lock is gone: the retry succeeds, and the sensor has nothing left to do.
    history.run(retry, GOOD, "succeeds")
    assert sensor.skip_message() == "The raw files are the ones last published: nothing to run."


def test_each_failed_retry_doubles_the_wait(sensor, history, monkeypatch):
    history.run(sensor.request(), GOOD, "finds the file locked")
    monkeypatch.setattr(automation, "FIRST_RETRY_DELAY", timedelta(0))
    [retry] = sensor.tick().run_requests
    monkeypatch.undo()
    second = history.run(retry, GOOD, "finds the file locked")
    retry_at = datetime.fromtimestamp(history.ended_at(second) + 240, UTC).strftime("%H:%M:%S UTC")
    assert sensor.skip_message() == (
        f"Run {second[:8]} for these files failed: {LOCKED} Retrying at {retry_at} "
        "(after 2 failed run(s)); materialize by hand to retry sooner."
    )


def test_the_wait_counts_only_the_failures_since_the_same_files_last_succeeded(sensor, history):
    # GOOD succeeded once, long ago; changed back to GOOD, the files now find the DuckDB file locked.
    failed = history.run(changed_back_to_good(sensor, history), GOOD, "finds the file locked")

    retry_at = datetime.fromtimestamp(history.ended_at(failed) + 120, UTC).strftime("%H:%M:%S UTC")
    assert sensor.skip_message() == (
        f"Run {failed[:8]} for these files failed: {LOCKED} Retrying at {retry_at} "
        "(after 1 failed run(s)); materialize by hand to retry sooner."
    )


def test_the_content_tag_names_the_set_of_files_whatever_their_order():
    assert combined_fingerprint(hashes(NEWER)) != combined_fingerprint(hashes(GOOD))
    assert combined_fingerprint(dict(reversed(hashes(GOOD).items()))) == combined_fingerprint(hashes(GOOD))


def test_the_wait_between_retries_grows_from_two_minutes_to_an_hour():
    minutes = [retry_delay(failures) / timedelta(minutes=1) for failures in range(1, 9)]
    assert minutes == [2, 4, 8, 16, 32, 60, 60, 60]


def test_a_canceled_run_is_not_retried(sensor, history, no_back_off):
    run_id = history.run(sensor.request(), GOOD, "is canceled")
    assert sensor.skip_message() == (
        f"Run {run_id[:8]} for these files was canceled; not retrying them. "
        "Change a file, or materialize by hand."
    )


# What a tick reads.


class FileReads:
    """Every file opened under the data folder, by any code in this process."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch):
        self.folder = folder
        self.opened: list[str] = []
        real_open = io.open

        def recording_open(file, *args, **kwargs):
            if isinstance(file, str | Path) and Path(file).parent == folder:
                self.opened.append(Path(file).name)
            return real_open(file, *args, **kwargs)

        # pathlib's Path.open calls io.open; open() is builtins.open. Both are the same function.
        monkeypatch.setattr(io, "open", recording_open)
        monkeypatch.setattr(builtins, "open", recording_open)

    def take(self) -> list[str]:
        opened, self.opened = self.opened, []
        return sorted(opened)


def test_a_tick_where_nothing_changed_reads_no_file(project_env, instance, monkeypatch):
    sensor = Sensor(instance, LocalDataSource(directory=str(project_env.data_dir)))
    History(instance).published(
        {name: hashlib.sha256((project_env.data_dir / name).read_bytes()).hexdigest() for name in RAW_FILES}
    )
    reads = FileReads(project_env.data_dir, monkeypatch)
    sensor.tick()
    assert reads.take() == []
    assert sensor.skip_message() == "The raw files are the ones last published: nothing to run."
    assert reads.take() == list(RAW_FILES)
    for _ in range(3):
        assert sensor.skip_message() == "The raw files are the ones last published: nothing to run."
        assert reads.take() == []
    with (project_env.data_dir / "raw_orders.csv").open("a") as orders:
        orders.write("100,1,2018-04-10,placed\n")
    reads.take()
    assert sensor.skip_message().startswith("Waiting for raw_orders.csv to hold still")
    assert reads.take() == []
    [request] = sensor.tick().run_requests
    assert reads.take() == ["raw_orders.csv"]
    assert request.tags["jaffle/changed"] == "raw_orders.csv"


def test_an_edit_that_keeps_the_file_size_requests_a_run(project_env, instance):
    sensor = Sensor(instance, LocalDataSource(directory=str(project_env.data_dir)))
    History(instance).published(
        {name: hashlib.sha256((project_env.data_dir / name).read_bytes()).hexdigest() for name in RAW_FILES}
    )
    assert sensor.settle().skip_reason.skip_message.endswith("nothing to run.")
    orders = project_env.data_dir / "raw_orders.csv"
    before, original = orders.stat(), orders.read_bytes()
    edited = original.replace(b"2,3,2018-01-02,completed", b"2,3,2018-01-03,completed")
    assert edited != original
    orders.write_bytes(edited)
    # Saved a second later, as an editor would: some file systems keep whole seconds only.
    os.utime(orders, ns=(before.st_mtime_ns + 10**9, before.st_mtime_ns + 10**9))
    assert orders.stat().st_size == before.st_size

    assert sensor.skip_message().startswith("Waiting for raw_orders.csv to hold still")
    [request] = sensor.tick().run_requests
    assert request.tags["jaffle/changed"] == "raw_orders.csv"


# End to end, with the project's job.


def test_good_then_bad_then_good_files_with_the_project_job(project_env, instance):
    """Runs what the sensor requests, as the daemon would, and reads the published tables."""
    sensor = Sensor(instance, LocalDataSource(directory=str(project_env.data_dir)))
    orders = project_env.data_dir / "raw_orders.csv"
    # Bytes, not text: the sample files end their lines with CRLF, which text mode would change.
    good = orders.read_bytes()

    def run_what_is_requested() -> list[bool]:
        return [
            project_env.run_job(instance, tags=request.tags).success
            for request in sensor.settle().run_requests
        ]

    assert run_what_is_requested() == [True]
    orders.write_bytes(good.replace(b"2,3,2018-01-02,completed", b"2,3,2018-01-02,lost"))
    assert run_what_is_requested() == [False]
    assert not sensor.tick().run_requests
    orders.write_bytes(good)
    # The failed run published nothing: the good file is still the published one.
    assert run_what_is_requested() == []
    assert project_env.query("select status from raw_orders where id = 2") == [("completed",)]
    assert project_env.query("select count(*) from raw_orders where status = 'lost'") == [(0,)]
    assert sensor.skip_message() == "The raw files are the ones last published: nothing to run."
