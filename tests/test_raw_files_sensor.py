"""The raw-files sensor, tick by tick: the file versions it reports, and what it reads to find out.

Each tick is evaluated as the daemon would (the cursor one tick returns goes into the next),
and the events it returns are what Dagster records for the file assets. What automation makes
of them is test_automation.py's.
"""

import builtins
import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from dagster import AssetKey, SensorResult, build_sensor_context

from dagster_project.defs.ingest.data_source import DataSource, LocalDataSource
from dagster_project.defs.ingest.files import DATA_VERSION_TAG, FILE_KEYS, raw_files_sensor
from dagster_project.defs.ingest.tables import RAW_TABLES
from tests.mocks import InMemoryDataSource

GOOD = {
    "raw_customers.csv": "id,first_name,last_name\n1,Ada,L.\n",
    "raw_orders.csv": "id,user_id,order_date,status\n1,1,2024-01-02,placed\n",
    "raw_payments.csv": "id,order_id,payment_method,amount\n1,1,coupon,500\n",
}
RAW_FILES = tuple(table.file_name for table in RAW_TABLES)
NEWER = {**GOOD, "raw_orders.csv": GOOD["raw_orders.csv"] + "2,1,2024-01-03,shipped\n"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Sensor:
    """Ticks of the sensor, each one handed the cursor the previous tick returned."""

    def __init__(self, instance, data_source: DataSource):
        self.instance = instance
        self.data_source = data_source
        self.cursor: str | None = None
        self.last: SensorResult | None = None

    def put(self, files: dict[str, str]) -> None:
        """The in-memory files become ``files``, as if new objects had been uploaded."""
        self.data_source = InMemoryDataSource(files=files, spool_dir=self.data_source.spool_dir)

    def tick(self) -> dict[str, str]:
        """One tick: the new data version it reported for each file, by file name."""
        context = build_sensor_context(instance=self.instance, cursor=self.cursor)
        self.last = raw_files_sensor(context, data_source=self.data_source)
        self.cursor = self.last.cursor
        names = {key: name for name, key in FILE_KEYS.items()}
        return {names[event.asset_key]: event.tags[DATA_VERSION_TAG] for event in self.last.asset_events}

    @property
    def skip_message(self) -> str:
        return self.last.skip_reason.skip_message


@pytest.fixture
def sensor(instance, tmp_path) -> Sensor:
    """The sensor watching the good files, held in memory as an object store would hold them."""
    return Sensor(instance, InMemoryDataSource(files=GOOD, spool_dir=str(tmp_path)))


def test_new_files_are_reported_once_they_hold_still(sensor):
    assert sensor.tick() == {}
    assert sensor.skip_message == (
        "Waiting for raw_customers.csv, raw_orders.csv, raw_payments.csv to hold still: a file is "
        "read once its size and modification time are the same on two ticks."
    )
    assert sensor.tick() == {name: sha256(text) for name, text in GOOD.items()}
    assert sensor.tick() == {}
    assert sensor.skip_message == "No raw file changed."


def test_a_changed_file_is_reported_with_its_new_hash_and_no_other(sensor):
    sensor.tick(), sensor.tick()
    sensor.put(NEWER)
    assert sensor.tick() == {}
    assert sensor.skip_message.startswith("Waiting for raw_orders.csv to hold still")
    assert sensor.tick() == {"raw_orders.csv": sha256(NEWER["raw_orders.csv"])}


def test_a_file_that_changes_on_every_tick_is_never_reported(sensor):
    sensor.tick(), sensor.tick()
    for rows in range(2, 6):
        sensor.put({**GOOD, "raw_orders.csv": GOOD["raw_orders.csv"] + f"{rows},1,2024-01-03,placed\n"})
        assert sensor.tick() == {}
        assert sensor.skip_message.startswith("Waiting for raw_orders.csv to hold still")


def test_a_file_changed_and_changed_back_before_it_held_still_is_not_reported_again(sensor):
    sensor.tick(), sensor.tick()
    sensor.put(NEWER)
    sensor.tick()
    sensor.put(GOOD)
    assert sensor.tick() == {}
    assert sensor.tick() == {}
    assert sensor.skip_message == "No raw file changed."


def test_a_missing_file_is_named_and_the_others_are_reported(sensor):
    sensor.put({name: text for name, text in GOOD.items() if name != "raw_orders.csv"})
    sensor.tick()
    assert sensor.tick() == {name: sha256(GOOD[name]) for name in ("raw_customers.csv", "raw_payments.csv")}
    sensor.tick()
    assert (
        sensor.skip_message == "Waiting for raw_orders.csv (or day files in raw_orders/) in the data source."
    )
    sensor.put(GOOD)
    sensor.tick()
    assert sensor.tick() == {"raw_orders.csv": sha256(GOOD["raw_orders.csv"])}


def test_a_cursor_of_another_shape_starts_afresh(sensor):
    sensor.cursor = json.dumps({name: sha256(text) for name, text in GOOD.items()})
    assert sensor.tick() == {}
    assert len(sensor.tick()) == 3


def test_each_file_is_an_asset_the_raw_table_loading_it_depends_on(project_env):
    graph = project_env.defs().resolve_asset_graph()
    for name, key in FILE_KEYS.items():
        assert not graph.get(key).is_executable, "Dagster runs nothing for a file: the sensor reports it"
        table = AssetKey(name.removesuffix(".csv"))
        assert graph.get(table).parent_keys == {key}


def test_what_the_sensor_reports_is_each_file_assets_data_version(project_env, instance):
    sensor = Sensor(instance, LocalDataSource(directory=str(project_env.data_dir)))
    sensor.tick()
    for event in sensor.last.asset_events:
        instance.report_runless_asset_event(event)
    sensor.tick()
    for event in sensor.last.asset_events:
        instance.report_runless_asset_event(event)
    recorded = {
        name: instance.get_latest_data_version_record(key).asset_materialization.tags[DATA_VERSION_TAG]
        for name, key in FILE_KEYS.items()
    }
    expected = {
        name: hashlib.sha256((project_env.data_dir / name).read_bytes()).hexdigest() for name in RAW_FILES
    }
    assert recorded == expected


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
    reads = FileReads(project_env.data_dir, monkeypatch)
    sensor.tick()
    assert reads.take() == []
    assert len(sensor.tick()) == 3
    assert reads.take() == list(RAW_FILES)
    for _ in range(3):
        assert sensor.tick() == {}
        assert reads.take() == []
    with (project_env.data_dir / "raw_orders.csv").open("a") as orders:
        orders.write("100,1,2018-04-10,placed\n")
    reads.take()
    assert sensor.tick() == {}
    assert reads.take() == []
    assert list(sensor.tick()) == ["raw_orders.csv"]
    assert reads.take() == ["raw_orders.csv"]


def test_an_edit_that_keeps_the_file_size_is_reported(project_env, instance):
    sensor = Sensor(instance, LocalDataSource(directory=str(project_env.data_dir)))
    sensor.tick(), sensor.tick()
    orders = project_env.data_dir / "raw_orders.csv"
    before, original = orders.stat(), orders.read_bytes()
    edited = original.replace(b"2,3,2018-01-02,completed", b"2,3,2018-01-03,completed")
    assert edited != original
    orders.write_bytes(edited)
    # Saved a second later, as an editor would: some file systems keep whole seconds only.
    os.utime(orders, ns=(before.st_mtime_ns + 10**9, before.st_mtime_ns + 10**9))
    assert orders.stat().st_size == before.st_size

    assert sensor.tick() == {}
    assert sensor.tick() == {"raw_orders.csv": hashlib.sha256(edited).hexdigest()}


def test_a_file_saved_again_with_the_same_bytes_is_read_but_not_reported(project_env, instance, monkeypatch):
    sensor = Sensor(instance, LocalDataSource(directory=str(project_env.data_dir)))
    sensor.tick(), sensor.tick()
    reads = FileReads(project_env.data_dir, monkeypatch)
    orders = project_env.data_dir / "raw_orders.csv"
    # Exported again, unchanged: a new modification time, the same bytes.
    later = orders.stat().st_mtime_ns + 10**9
    os.utime(orders, ns=(later, later))

    assert sensor.tick() == {}
    assert sensor.tick() == {}
    assert reads.take() == ["raw_orders.csv"]
    assert sensor.skip_message == "No raw file changed."
