"""The instance's SQLite storage keeps the event log's index database open, and nothing else changes.

What the kept connection saves is measured by `make bench` (docs/benchmarks.md, "Dagster's SQLite
event log"). These tests hold what must not change with it: each instance stores in its own
home; what one process stores, another reads at once; a run's new events still reach the UI's
live log; and a forked or disposed instance leaves no connection behind.
"""

import os
import shutil
import signal
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance
from dagster._core.test_utils import create_run_for_test

from dagster_project.instance import sqlite_storage
from dagster_project.instance.sqlite_storage import KEPT_RUN_ENGINES, PersistentSqliteEventLogStorage
from dagster_project.settings import INSTANCE_TEMPLATE
from tests.processes import wait_for


def new_home(path: Path) -> Path:
    path.mkdir()
    shutil.copy(INSTANCE_TEMPLATE, path / "dagster.yaml")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return new_home(tmp_path / "dagster_home")


@pytest.fixture
def instance(home: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def materialize(instance: DagsterInstance, asset: str, value: int) -> None:
    instance.report_runless_asset_event(AssetMaterialization(asset, metadata={"value": value}))


def latest_value(instance: DagsterInstance, asset: str) -> int | None:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    return None if event is None else event.asset_materialization.metadata["value"].value


def open_files(home: Path, suffix: str) -> list[str]:
    """This process's open files of ``home`` ending in ``suffix``: never another test's instance's,
    which a worker may still hold when the tests run in another order."""
    return [
        file.path
        for file in psutil.Process().open_files()
        if file.path.startswith(f"{home.resolve()}/") and file.path.endswith(suffix)
    ]


def test_the_project_instance_stores_its_events_in_its_own_home(tmp_path, monkeypatch):
    elsewhere = new_home(tmp_path / "elsewhere")
    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    home = new_home(tmp_path / "home")
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PersistentSqliteEventLogStorage)
        materialize(instance, "orders", 1)
    with DagsterInstance.from_config(str(home)) as reopened:
        assert latest_value(reopened, "orders") == 1
        # Runs and the schedules' and sensors' state: Dagster's own stores, in the same home.
        assert [run.run_id for run in reopened.get_runs()] == []
        assert reopened.all_instigator_state() == []
    for database in ("runs.db", "runs/index.db"):
        assert (home / "history" / database).exists()
    assert (home / "schedules" / "schedules.db").exists()
    assert not (elsewhere / "history").exists()


def test_what_one_instance_stores_another_reads_at_once_both_ways(home: Path):
    # Two instances on one home, as a run worker and the webserver are: each keeps its own
    # connection, and neither may read from a snapshot older than the other's last write.
    with DagsterInstance.from_config(str(home)) as worker, DagsterInstance.from_config(str(home)) as ui:
        for value in range(1, 4):
            materialize(worker, "customers", value)
            assert latest_value(ui, "customers") == value
            materialize(ui, "orders", value)
            assert latest_value(worker, "orders") == value


def test_the_kept_connection_serves_every_thread_in_turn(instance: DagsterInstance):
    # The webserver and the daemon store and read events from several threads at once.
    materialize(instance, "customers", 0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda value: materialize(instance, "customers", value), range(1, 9)))
    assert len(instance.fetch_materializations(AssetKey("customers"), limit=100).records) == 9


def test_an_event_waits_while_another_process_writes_the_index(instance: DagsterInstance, home: Path):
    # Runs, the daemon and the webserver write the same index: a writer waits its turn as long
    # as Dagster's own connections do (30 s), not SQLite's default 5 s.
    materialize(instance, "customers", 1)
    other = sqlite3.connect(
        home / "history" / "runs" / "index.db", isolation_level=None, check_same_thread=False
    )
    other.execute("begin immediate")
    release = threading.Timer(7, other.execute, ["commit"])
    release.start()
    try:
        materialize(instance, "customers", 2)
    finally:
        release.join()
        other.close()
    assert latest_value(instance, "customers") == 2


def test_a_runs_new_events_reach_a_watcher_as_they_reach_the_uis_live_log(home: Path):
    with DagsterInstance.from_config(str(home)) as ui, DagsterInstance.from_config(str(home)) as worker:
        run = create_run_for_test(worker)
        seen: list[str] = []

        def show(event, cursor) -> None:
            seen.append(event.message)

        ui.event_log_storage.watch(run.run_id, None, show)
        try:
            for n in range(3):
                worker.report_engine_event(f"step {n} done", run)
                wait_for(lambda n=n: f"step {n} done" in seen, f"the watcher to see event {n} (saw {seen})")
        finally:
            ui.event_log_storage.end_watch(run.run_id, show)


def test_the_index_database_is_opened_once_for_many_events(instance: DagsterInstance, monkeypatch):
    materialize(instance, "customers", 0)
    opened: list[str] = []
    # SQLAlchemy connects through sqlite3.dbapi2.
    connect = sqlite3.dbapi2.connect

    def counting_connect(database, *args, **kwargs):
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3.dbapi2, "connect", counting_connect)
    for value in range(1, 21):
        materialize(instance, "customers", value)
    assert latest_value(instance, "customers") == 20
    assert [name for name in opened if name.endswith("index.db")] == []
    assert len([name for name in opened if name.endswith(".db")]) >= 20, (
        "the run databases are opened per use"
    )


def test_a_process_keeps_engines_for_a_bounded_number_of_runs(instance: DagsterInstance):
    storage = instance.event_log_storage
    for _ in range(KEPT_RUN_ENGINES + 5):
        instance.report_engine_event("started", create_run_for_test(instance))
    assert len(storage._engines) == KEPT_RUN_ENGINES + 1
    assert "index" in storage._engines


def test_a_forked_process_opens_its_own_index_connection_and_leaves_the_parents_open(
    instance: DagsterInstance,
):
    materialize(instance, "customers", 1)
    parents_engine = instance.event_log_storage._engines["index"]
    pid = os.fork()
    if pid == 0:
        # A child that hangs (a lock another thread held at the fork) is killed, never waited on.
        signal.alarm(60)
        code = 1
        try:
            materialize(instance, "customers", 2)
            child_engine = instance.event_log_storage._engines["index"]
            materialize(instance, "customers", 3)
            kept = instance.event_log_storage._engines["index"] is child_engine
            inherited = any(engines.get("index") is parents_engine for engines in sqlite_storage._INHERITED)
            code = 0 if child_engine is not parents_engine and kept and inherited else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    materialize(instance, "customers", 4)
    assert latest_value(instance, "customers") == 4
    assert instance.event_log_storage._engines["index"] is parents_engine


def test_disposing_the_instance_closes_its_index_connection(home: Path):
    instance = DagsterInstance.from_config(str(home))
    materialize(instance, "customers", 1)
    assert open_files(home, "index.db")
    instance.dispose()
    assert open_files(home, "index.db") == []


def test_a_table_missing_once_is_found_once_it_is_there(instance: DagsterInstance, home: Path):
    # What a migration does while a webserver runs: the table it adds is found without a restart.
    storage = instance.event_log_storage
    assert storage.has_table("pool_notes") is False
    with sqlite3.connect(home / "history" / "runs" / "index.db") as conn:
        conn.execute("create table pool_notes (note text)")
    assert storage.has_table("pool_notes") is True
    assert storage.has_table("event_logs") is True
