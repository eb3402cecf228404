"""Declarative automation, tick by tick, against a real Dagster instance and the project's assets.

Each test records the file versions the raw-files sensor reports, evaluates every asset's automation
condition as the automation sensor would (the cursor of one tick goes into the next), runs
what was requested with the project's job, and reads the published tables.
"""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    build_sensor_context,
    evaluate_automation_conditions,
)
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

from dagster_project.defs.automation import RUN_TAGS, jaffle_automation, jaffle_shop_job
from dagster_project.defs.ingest.data_source import LocalDataSource
from dagster_project.defs.ingest.files import raw_files_sensor
from dagster_project.defs.ingest.tables import RAW_TABLES
from tests.helpers import FILE_ASSETS, PROJECT_ASSETS, ProjectTemplate, make_project_env, replace_file

ORDERS_AND_WHAT_READS_THEM = {"raw_orders", "stg_orders", "orders", "customers", "order_count_chart"}
EVERY_ASSET = set(PROJECT_ASSETS)


class Automation:
    """The two sensors' ticks on one instance, and the runs of what they request."""

    def __init__(self, env, instance):
        self.env = env
        self.instance = instance
        self.defs = env.defs()
        self.data_source = LocalDataSource(directory=str(env.data_dir))
        self.sensor_cursor: str | None = None
        self.cursor = None

    def observe(self) -> None:
        """One tick of the raw-files sensor; the daemon records the versions it reports."""
        context = build_sensor_context(instance=self.instance, cursor=self.sensor_cursor)
        result = raw_files_sensor(context, data_source=self.data_source)
        self.sensor_cursor = result.cursor
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)

    def settle(self) -> None:
        """Two ticks: files that held still between them are reported."""
        self.observe()
        self.observe()

    def tick(self, at: datetime | None = None) -> set[str]:
        """One evaluation of every automation condition: the assets it requests."""
        result = evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=at
        )
        self.cursor = result.cursor
        return {key.to_user_string() for key in result._requested_partitions_by_asset_key}

    def run(self, assets: set[str]) -> bool:
        """Run ``assets`` as the automation sensor launches them: one run, with its tags."""
        selection = [AssetKey(name) for name in sorted(assets)]
        return self.env.run_job(self.instance, asset_selection=selection, tags=RUN_TAGS).success


@pytest.fixture
def automation(project_env, instance) -> Automation:
    return Automation(project_env, instance)


@pytest.fixture(scope="module")
def published_template(tmp_path_factory) -> tuple[ProjectTemplate, str | None, object]:
    """The sample files reported, loaded and published by what automation requested, once:
    the project's files and the two sensors' cursors after it.

    Automation's first tick comes before the files are reported, as when both sensors are
    turned on together: a first tick takes what it finds as handled.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_project_env(tmp_path_factory.mktemp("published") / "project", monkeypatch)
        with env.instance() as instance:
            automation = Automation(env, instance)
            assert automation.tick() == set()
            automation.settle()
            requested = automation.tick()
            assert requested == EVERY_ASSET
            assert automation.run(requested)
    return ProjectTemplate.set_aside(env), automation.sensor_cursor, automation.cursor


@pytest.fixture
def published(published_template, monkeypatch) -> Iterator[Automation]:
    """A copy of that state of its own: its files, its instance, the sensors' cursors."""
    template, sensor_cursor, cursor = published_template
    env = template.fresh_copy(monkeypatch)
    with env.instance() as instance:
        automation = Automation(env, instance)
        automation.sensor_cursor, automation.cursor = sensor_cursor, cursor
        yield automation


def append_order(env, line: bytes) -> None:
    orders = env.data_dir / "raw_orders.csv"
    replace_file(orders, orders.read_bytes() + line)


def set_status(env, status: str) -> None:
    """Order 2 gets ``status``: a new raw_orders.csv, which passes every check unless it is bad."""
    orders = env.data_dir / "raw_orders.csv"
    text = orders.read_bytes()
    replace_file(
        orders, re.sub(rb"^2,3,2018-01-02,\w+", f"2,3,2018-01-02,{status}".encode(), text, flags=re.M)
    )


def order_2(env) -> list[tuple]:
    return env.query("select status from main.raw_orders where id = 2")


def test_nothing_is_requested_before_the_files_are_reported(automation):
    assert automation.tick() == set()
    automation.observe()
    assert automation.tick() == set()


def test_nothing_is_requested_when_nothing_changed(published):
    for _ in range(3):
        published.observe()
        assert published.tick() == set()


def test_a_new_file_is_loaded_once_with_everything_that_reads_it(published):
    set_status(published.env, "returned")
    published.settle()
    requested = published.tick()
    assert requested == ORDERS_AND_WHAT_READS_THEM
    assert published.tick() == set()
    assert published.run(requested)
    assert order_2(published.env) == [("returned",)]
    published.settle()
    assert published.tick() == set()


def test_a_half_written_file_is_never_loaded(published):
    for order_id in range(100, 104):
        append_order(published.env, f"{order_id},1,2018-04-10,placed\r\n".encode())
        published.observe()
        assert published.tick() == set()
    published.observe()
    assert published.tick() == ORDERS_AND_WHAT_READS_THEM


def test_a_run_that_failed_on_the_data_is_not_retried_until_a_file_changes(published):
    set_status(published.env, "lost")
    published.settle()
    assert not published.run(published.tick())
    for _ in range(3):
        published.observe()
        assert published.tick() == set()
    assert order_2(published.env) == [("completed",)]

    set_status(published.env, "shipped")
    published.settle()
    assert published.run(published.tick())
    assert order_2(published.env) == [("shipped",)]


def test_nothing_is_requested_while_a_run_of_the_same_assets_is_in_flight(published):
    set_status(published.env, "shipped")
    in_flight = published.instance.create_run_for_job(
        published.defs.resolve_job_def(jaffle_shop_job.name), status=DagsterRunStatus.STARTED
    )
    published.settle()
    assert published.tick() == set()
    published.instance.report_run_canceled(in_flight)
    assert published.tick() == ORDERS_AND_WHAT_READS_THEM


def test_the_daily_tick_requests_every_asset_once_a_day(published):
    tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert published.tick(tomorrow + timedelta(hours=5, minutes=59)) == set()
    assert published.tick(tomorrow + timedelta(hours=6, minutes=1)) == EVERY_ASSET
    assert published.tick(tomorrow + timedelta(hours=6, minutes=30)) == set()
    assert published.tick(tomorrow + timedelta(hours=23)) == set()
    assert published.tick(tomorrow + timedelta(days=1, hours=6, minutes=1)) == EVERY_ASSET


# Retries: a killed run is run again by Dagster's run retries, when automation launched it.


def failed_run(instance, defs, tags: dict[str, str]):
    run = instance.create_run_for_job(defs.resolve_job_def(jaffle_shop_job.name), tags=tags)
    instance.report_run_failed(run, "The run worker exited unexpectedly (SIGKILL).")
    return instance.get_run_by_id(run.run_id)


def test_a_killed_run_that_automation_launched_is_run_again_whole(project_env, instance):
    assert instance.run_retries_enabled
    assert not instance.run_retries_retry_on_asset_or_op_failure
    run = failed_run(instance, project_env.defs(), RUN_TAGS)
    assert should_retry(run, instance)
    assert run.tags["dagster/retry_strategy"] == "ALL_STEPS"


def test_a_killed_run_someone_launched_by_hand_is_not_retried(project_env, instance):
    assert not should_retry(failed_run(instance, project_env.defs(), {}), instance)


def test_both_sensors_start_stopped_so_dagster_dev_launches_nothing_unasked():
    assert raw_files_sensor.default_status == DefaultSensorStatus.STOPPED
    assert jaffle_automation.default_status == DefaultSensorStatus.STOPPED


def test_the_job_builds_every_asset_of_the_project(project_env):
    job = project_env.defs().resolve_job_def("jaffle_shop_job")
    assert job.asset_layer.executable_asset_keys == {AssetKey(name) for name in PROJECT_ASSETS}


def test_each_asset_carries_the_condition_for_what_it_is(project_env):
    graph = project_env.defs().resolve_asset_graph()
    raw = {table.name for table in RAW_TABLES}
    labels = {
        key.to_user_string(): getattr(graph.get(key).automation_condition, "label", None)
        for key in graph.get_all_asset_keys()
    }
    assert labels == {
        **{name: "on a new file, and daily at 06:00 UTC" for name in raw},
        **{name: "with what it reads, or eager" for name in set(PROJECT_ASSETS) - raw},
        # A file is reported by raw_files_sensor; nothing can materialize it.
        **{name: None for name in FILE_ASSETS},
    }
