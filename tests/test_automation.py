"""The daily schedule and the raw-files sensor, evaluated with a mock data source."""

import hashlib
from datetime import UTC, datetime

import pytest
from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
)

from dagster_project.data_source import LocalDataSource
from dagster_project.defs.automation import (
    RAW_FILES,
    combined_fingerprint,
    daily_jaffle_shop_schedule,
    raw_files_sensor,
)
from tests.mocks import InMemoryDataSource

FILES = {
    "raw_customers.csv": "id,first_name,last_name\n1,Ada,L.\n",
    "raw_orders.csv": "id,user_id,order_date,status\n1,1,2024-01-02,placed\n",
    "raw_payments.csv": "id,order_id,payment_method,amount\n1,1,coupon,500\n",
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def files_source(tmp_path):
    def make(files: dict[str, str]) -> InMemoryDataSource:
        return InMemoryDataSource(files=files, spool_dir=str(tmp_path))

    return make


def evaluate_sensor(source: InMemoryDataSource, cursor: str | None = None):
    """One tick, as the daemon runs it: the cursor the last tick returned goes into the next."""
    return raw_files_sensor(build_sensor_context(cursor=cursor), data_source=source)


def test_new_files_request_a_run_keyed_by_their_content(files_source):
    result = evaluate_sensor(files_source(FILES))
    [request] = result.run_requests
    assert request.run_key == combined_fingerprint({name: sha256(FILES[name]) for name in RAW_FILES})
    assert request.tags["jaffle/changed"] == "raw_customers.csv,raw_orders.csv,raw_payments.csv"


def test_unchanged_files_are_skipped_and_never_requested_twice(files_source):
    first = evaluate_sensor(files_source(FILES))
    second = evaluate_sensor(files_source(dict(FILES)), cursor=first.cursor)
    assert isinstance(second, SkipReason)
    assert second.skip_message == "No raw file changed since the last run request."
    # Even with the cursor lost, the same content gives the same run key, which Dagster
    # refuses to launch twice.
    after_reset = evaluate_sensor(files_source(FILES))
    assert after_reset.run_requests[0].run_key == first.run_requests[0].run_key


def test_a_changed_file_requests_a_new_run_naming_the_file(files_source):
    first = evaluate_sensor(files_source(FILES))
    changed = {**FILES, "raw_orders.csv": FILES["raw_orders.csv"].replace("placed", "shipped")}
    second = evaluate_sensor(files_source(changed), cursor=first.cursor)
    [request] = second.run_requests
    assert request.run_key != first.run_requests[0].run_key
    assert request.tags["jaffle/changed"] == "raw_orders.csv"


def test_the_sensor_waits_for_a_missing_file(files_source):
    incomplete = {name: text for name, text in FILES.items() if name != "raw_payments.csv"}
    result = evaluate_sensor(files_source(incomplete))
    assert isinstance(result, SkipReason)
    assert result.skip_message == "Waiting for raw_payments.csv in the data source."


def test_the_sensor_runs_the_raw_assets_and_everything_downstream(project_env):
    defs = project_env.defs()
    assert raw_files_sensor.job_name == "jaffle_shop_job"
    job_keys = defs.resolve_job_def("jaffle_shop_job").asset_layer.executable_asset_keys
    graph = defs.resolve_asset_graph()
    raw_and_downstream = graph.get_all_asset_keys()
    assert job_keys == raw_and_downstream


def test_the_schedule_runs_the_job_daily_at_six_utc(project_env):
    context = build_schedule_context(
        scheduled_execution_time=datetime(2025, 3, 1, 6, tzinfo=UTC),
        resources={"data_source": LocalDataSource(directory=str(project_env.data_dir))},
    )
    result = daily_jaffle_shop_schedule.evaluate_tick(context)
    assert daily_jaffle_shop_schedule.cron_schedule == "0 6 * * *"
    assert daily_jaffle_shop_schedule.execution_timezone == "UTC"
    assert daily_jaffle_shop_schedule.job_name == "jaffle_shop_job"
    assert [request.tags["jaffle/trigger"] for request in result.run_requests] == ["schedule"]


def test_the_schedule_skips_a_day_when_a_file_is_missing(files_source):
    incomplete = {name: text for name, text in FILES.items() if name != "raw_orders.csv"}
    result = daily_jaffle_shop_schedule(build_schedule_context(), data_source=files_source(incomplete))
    assert isinstance(result, SkipReason)
    assert result.skip_message == "Not running: the data source has no raw_orders.csv."


def test_both_start_stopped_so_dagster_dev_launches_nothing_unasked():
    assert daily_jaffle_shop_schedule.default_status == DefaultScheduleStatus.STOPPED
    assert raw_files_sensor.default_status == DefaultSensorStatus.STOPPED
