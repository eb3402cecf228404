"""The job and its daily schedule. The sensor has its own module: test_raw_files_sensor.py."""

from datetime import UTC, datetime

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    SkipReason,
    build_schedule_context,
)

from dagster_project.data_source import LocalDataSource
from dagster_project.defs.automation import daily_jaffle_shop_schedule, raw_files_sensor
from tests.helpers import PROJECT_ASSETS
from tests.mocks import InMemoryDataSource

FILES = {
    "raw_customers.csv": "id,first_name,last_name\n1,Ada,L.\n",
    "raw_orders.csv": "id,user_id,order_date,status\n1,1,2024-01-02,placed\n",
    "raw_payments.csv": "id,order_id,payment_method,amount\n1,1,coupon,500\n",
}


def test_the_job_builds_every_asset_of_the_project(project_env):
    job = project_env.defs().resolve_job_def("jaffle_shop_job")
    assert job.asset_layer.executable_asset_keys == {AssetKey(name) for name in PROJECT_ASSETS}


def test_the_schedule_and_the_sensor_run_that_job():
    assert daily_jaffle_shop_schedule.job_name == "jaffle_shop_job"
    assert raw_files_sensor.job_name == "jaffle_shop_job"


def test_the_schedule_runs_the_job_daily_at_six_utc(project_env):
    context = build_schedule_context(
        scheduled_execution_time=datetime(2025, 3, 1, 6, tzinfo=UTC),
        resources={"data_source": LocalDataSource(directory=str(project_env.data_dir))},
    )
    result = daily_jaffle_shop_schedule.evaluate_tick(context)
    assert daily_jaffle_shop_schedule.cron_schedule == "0 6 * * *"
    assert daily_jaffle_shop_schedule.execution_timezone == "UTC"
    assert [request.tags["jaffle/trigger"] for request in result.run_requests] == ["schedule"]


def test_the_schedule_skips_a_day_when_a_file_is_missing(tmp_path):
    incomplete = {name: text for name, text in FILES.items() if name != "raw_orders.csv"}
    source = InMemoryDataSource(files=incomplete, spool_dir=str(tmp_path))
    result = daily_jaffle_shop_schedule(build_schedule_context(), data_source=source)
    assert isinstance(result, SkipReason)
    assert result.skip_message == "Not running: the data source has no raw_orders.csv."


def test_both_start_stopped_so_dagster_dev_launches_nothing_unasked():
    assert daily_jaffle_shop_schedule.default_status == DefaultScheduleStatus.STOPPED
    assert raw_files_sensor.default_status == DefaultSensorStatus.STOPPED
