"""Another program holding the DuckDB file: a fast, clear failure, never minutes of silence."""

import fcntl
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from dagster import DagsterEventType, RetryRequested

from dagster_project.defs.automation import RUN_TAGS
from dagster_project.defs.report import CHART_FILE_NAME
from dagster_project.warehouse import LEASE_TAKEN, RunLeaseTimeoutError, WarehouseLockedError, publish
from dagster_project.warehouse import duckdb as warehouse
from dagster_project.warehouse.duckdb import DuckDBLockedError, DuckDBWarehouse
from tests.helpers import assert_catalog_matches_warehouse, load_sample_tables, materialize_raw, replace_file
from tests.processes import wait_for

HOLDER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read_only")
print("holding", flush=True)
sys.stdin.read()
"""


@contextmanager
def held(database, mode: str = "read_write") -> Iterator[subprocess.Popen]:
    """Another process with the file open, as a DuckDB CLI or a notebook would have it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def loaded(project_env):
    """The sample tables, loaded; the connection is closed again before the test runs."""
    with project_env.warehouse().get_connection() as conn:
        load_sample_tables(conn)
    return project_env


def run_raw_customers(env, lock_timeout: float):
    return materialize_raw(
        env,
        ["raw_customers"],
        duckdb=DuckDBWarehouse(database=str(env.database), lock_timeout=lock_timeout),
    )


def test_a_held_file_fails_the_raw_asset_naming_the_lock_the_holder_and_what_to_do(loaded):
    with held(loaded.database) as holder, pytest.raises(DuckDBLockedError) as caught:
        run_raw_customers(loaded, lock_timeout=1)
    message = str(caught.value)
    assert message.startswith(f"The DuckDB file {loaded.database} is locked by ")
    assert f"(PID {holder.pid}); gave up after " in message
    assert "Close that program (a DuckDB CLI, a notebook, a SQL editor)" in message
    assert "`kill <PID>`" in message
    assert loaded.query("select count(*) from raw_customers") == [(100,)]


def test_readers_open_the_file_read_only_beside_another_reader(loaded):
    with held(loaded.database, "read_only"):
        with loaded.warehouse().get_connection(read_only=True) as conn:
            assert conn.execute("select count(*) from raw_orders").fetchone() == (99,)
        # A writer is still refused while the reader holds the file.
        with pytest.raises(DuckDBLockedError):
            run_raw_customers(loaded, lock_timeout=0.5)


def test_a_run_on_a_held_file_fails_after_one_wait_with_the_holder_in_every_step(loaded, instance):
    # A short wait keeps the test quick; the default wait is measured against a real holder below.
    config = {"database": str(loaded.database), "lock_timeout": 2}
    run_config = {"resources": {"duckdb": {"config": config}}}
    with held(loaded.database) as holder:
        result = loaded.run_job(instance, run_config=run_config)
    assert not result.success
    assert result.get_failed_step_keys() == {"raw_tables"}
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        message = (error.cause or error).message
        assert f"{loaded.database} is locked by " in message
        assert f"(PID {holder.pid}); gave up after " in message
    started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    assert not started & {"jaffle_shop_dbt_assets", "order_count_chart"}
    assert loaded.query("select count(*) from main.raw_customers") == [(100,)]


def test_an_automated_run_tries_a_held_file_again_after_2_4_8_16_and_32_minutes():
    minutes = [
        publish.retry_delay(attempt) / timedelta(minutes=1) for attempt in range(1, publish.LOCK_RETRIES + 1)
    ]
    assert minutes == [2, 4, 8, 16, 32]


class HeldWarehouse:
    """A warehouse another program holds: the run lease is taken, the file cannot be opened."""

    def __init__(self):
        self.holders: list[str] = []

    def hold_for_run(self, run_id: str, log) -> None:
        self.holders.append(run_id)

    def session(self):
        raise WarehouseLockedError("jaffle.duckdb is locked by duckdb (PID 42). Close that program.")


@dataclass
class HeldStart:
    """What ``publish.begin`` did on a held file: what it raised, whose lease, what it warned."""

    raised: Exception
    lease_holders: list[str]
    warnings: list[str]


def begin_on_a_held_file(tags: dict[str, str], retry_number: int) -> HeldStart:
    """``publish.begin`` in run ``run-1`` on a held file, in a step tried ``retry_number`` times before."""
    warnings: list[str] = []
    context = SimpleNamespace(
        op_execution_context=SimpleNamespace(run_id="run-1"),
        run=SimpleNamespace(tags=tags),
        retry_number=retry_number,
        log=SimpleNamespace(info=lambda message: None, warning=warnings.append),
    )
    warehouse = HeldWarehouse()
    # Either way begin stops the step: with Dagster's request to retry, or with the lock's error.
    with pytest.raises((RetryRequested, WarehouseLockedError)) as raised:
        publish.begin(context, warehouse)
    return HeldStart(raised.value, warehouse.holders, warnings)


def test_an_automated_step_on_a_held_file_asks_dagster_to_run_it_again_after_the_next_delay():
    started = begin_on_a_held_file(RUN_TAGS, retry_number=2)
    assert isinstance(started.raised, RetryRequested)
    assert started.raised.max_retries == 5
    assert started.raised.seconds_to_wait == 8 * 60
    assert started.lease_holders == ["run-1"]
    assert started.warnings == [
        "jaffle.duckdb is locked by duckdb (PID 42). Close that program. Trying again in 8 minutes."
    ]


def test_a_step_launched_by_hand_on_a_held_file_fails_at_once_naming_the_holder():
    started = begin_on_a_held_file({"dagster/from_ui": "true"}, retry_number=0)
    assert isinstance(started.raised, WarehouseLockedError)
    assert "locked by duckdb (PID 42)" in str(started.raised)
    assert started.warnings == []


def steps_up_for_retry(env) -> list[str]:
    """What the latest run's steps said when they stepped back to try again later."""
    with env.instance() as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return []
        events = instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
        return [event.dagster_event.message or "" for event in events]


def test_a_run_automation_launched_tries_a_held_file_again_after_a_back_off_and_publishes(
    loaded, instance, monkeypatch
):
    # The back-off starts at 2 minutes; a second keeps the test short, the doubling is the same.
    monkeypatch.setattr(publish, "FIRST_RETRY_DELAY", timedelta(seconds=1))
    customers = loaded.data_dir / "raw_customers.csv"
    replace_file(customers, customers.read_bytes() + b"101,Grace,H.\n")
    run_config = {
        "resources": {"duckdb": {"config": {"database": str(loaded.database), "lock_timeout": 0.5}}}
    }

    with held(loaded.database) as holder:

        def let_go_once_the_step_stepped_back():
            wait_for(lambda: steps_up_for_retry(loaded), "the raw step to step back for a retry")
            holder.stdin.close()
            holder.wait(timeout=30)

        releaser = threading.Thread(target=let_go_once_the_step_stepped_back)
        releaser.start()
        result = loaded.run_job(instance, run_config=run_config, tags=RUN_TAGS)
        releaser.join()

    assert result.success
    assert loaded.query("select first_name from main.raw_customers where id = 101") == [("Grace",)]
    assert loaded.query("select count(*) from main.customers") == [(101,)]
    assert "101 customers" in (loaded.chart_dir / CHART_FILE_NAME).read_text()
    assert_catalog_matches_warehouse(loaded, instance)
    warnings = [
        event.message
        for event in instance.all_logs(result.run_id)
        if event.level >= 30 and "Trying again in" in (event.message or "")
    ]
    assert warnings and f"{loaded.database} is locked by " in warnings[0]
    assert "Trying again in 0.0166667 minutes." in warnings[0]


# Giving up takes at most the timeout plus one connection attempt; on a loaded machine an attempt
# can take seconds, so this bounds a hang, not the wait.
SLOWEST_ATTEMPT = 10


def test_by_default_a_held_file_is_given_up_on_after_10_to_15_s(loaded):
    resource = DuckDBWarehouse(database=str(loaded.database))
    assert resource.lock_timeout == 15
    with held(loaded.database) as holder:
        started = time.monotonic()
        with pytest.raises(DuckDBLockedError) as caught, resource.get_connection():
            pass
        elapsed = time.monotonic() - started
    # It gives up once the next wait could end past 15 s, and no wait is longer than 5 s.
    assert 10 <= elapsed <= 15 + SLOWEST_ATTEMPT
    waited = int(str(caught.value).split("gave up after ")[1].split(" s")[0])
    assert 10 <= waited <= 15
    assert f"(PID {holder.pid})" in str(caught.value)


class FakeClock:
    """Stands in for the time module: sleeping advances the clock at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(warehouse, "time", fake)
    return fake


def failing_connect(monkeypatch, error: Exception) -> list[str]:
    calls: list[str] = []

    def connect(database, **kwargs):
        calls.append(database)
        raise error

    monkeypatch.setattr(warehouse.duckdb, "connect", connect)
    return calls


LOCK_ERROR = duckdb.IOException(
    'IO Error: Could not set lock on file "/data/jaffle.duckdb": Conflicting lock is held in '
    "/usr/local/bin/duckdb (PID 4242). See also https://duckdb.org/docs/stable/connect/concurrency"
)


def test_by_default_a_lock_is_retried_with_jittered_backoff_and_given_up_within_30_s(
    monkeypatch, clock, tmp_path
):
    calls = failing_connect(monkeypatch, LOCK_ERROR)
    resource = DuckDBWarehouse(database=str(tmp_path / "jaffle.duckdb"))
    with pytest.raises(DuckDBLockedError) as caught, resource.get_connection():
        pass
    assert clock.now <= resource.lock_timeout < 30
    assert "locked by /usr/local/bin/duckdb (PID 4242)" in str(caught.value)
    assert len(calls) == len(clock.sleeps) + 1 > 5
    # Each wait is drawn between 0 and a ceiling that doubles from 0.1 s up to 5 s.
    ceilings = [min(0.1 * 2**attempt, 5.0) for attempt in range(len(clock.sleeps))]
    assert all(0 <= slept <= ceiling for slept, ceiling in zip(clock.sleeps, ceilings, strict=False))
    assert len(set(clock.sleeps)) == len(clock.sleeps), "waits must be jittered"


def test_once_a_step_has_given_up_later_steps_of_the_run_fail_at_once(monkeypatch, clock, tmp_path):
    calls = failing_connect(monkeypatch, LOCK_ERROR)
    resource = DuckDBWarehouse(database=str(tmp_path / "jaffle.duckdb"), lock_timeout=3)
    with pytest.raises(DuckDBLockedError), resource.get_connection():
        pass
    first_wait = (len(calls), len(clock.sleeps))
    with pytest.raises(DuckDBLockedError, match="gave up after 0 s"), resource.get_connection():
        pass
    assert (len(calls), len(clock.sleeps)) == (first_wait[0] + 1, first_wait[1])


def test_an_error_other_than_a_lock_is_raised_at_once_without_retrying(monkeypatch, clock, tmp_path):
    error = duckdb.IOException('IO Error: Cannot open file "/data/jaffle.duckdb": Permission denied')
    calls = failing_connect(monkeypatch, error)
    warehouse = DuckDBWarehouse(database=str(tmp_path / "jaffle.duckdb"))
    with pytest.raises(duckdb.IOException, match="Permission denied"), warehouse.get_connection():
        pass
    assert len(calls) == 1
    assert clock.sleeps == []


# The run lease: one run at a time on the warehouse, whatever launched it.


def test_a_run_waiting_for_the_lease_names_the_run_holding_it_then_gives_up_saying_what_to_do(tmp_path):
    database = tmp_path / "jaffle.duckdb"
    first, second = (DuckDBWarehouse(database=str(database), run_wait_timeout=0.2) for _ in range(2))
    first.hold_for_run("run-a", print)
    holder = f"run run-a (PID {os.getpid()})"
    log: list[str] = []

    with pytest.raises(RunLeaseTimeoutError) as caught:
        second.hold_for_run("run-b", log.append)

    assert log == [f"Waiting for {holder} to finish with the warehouse {database}."]
    assert str(caught.value) == (
        f"{holder} has held the warehouse {database} for more than 0 s, so this run gave up "
        "waiting. Wait for that run to end (or terminate it in the UI), then materialize again."
    )
    first.release_run_lease()
    second.hold_for_run("run-b", log.append)
    assert log[-1] == f"{LEASE_TAKEN} {database} until this run ends."
    second.release_run_lease()


def test_a_lease_whose_holder_is_not_recorded_is_held_by_another_run(tmp_path):
    database = tmp_path / "jaffle.duckdb"
    # A holder that has taken the lock and not yet written who it is.
    with Path(f"{database}.run-lease").open("a+", encoding="utf-8") as lease:
        fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunLeaseTimeoutError, match=r"^another run has held the warehouse "):
            DuckDBWarehouse(database=str(database), run_wait_timeout=0).hold_for_run("run-b", print)


def test_each_step_of_a_run_finds_the_lease_held_and_the_next_run_takes_it_over(tmp_path):
    database = tmp_path / "jaffle.duckdb"
    resource, elsewhere = (DuckDBWarehouse(database=str(database), run_wait_timeout=0) for _ in range(2))
    log: list[str] = []

    taken = [resource.hold_for_run(run_id, log.append) for run_id in ("run-a", "run-a", "run-b")]

    assert log == [f"{LEASE_TAKEN} {database} until this run ends."] * 2
    # A later step of run-a finds the lease its process holds: it has nothing to clean up.
    assert taken == [True, False, True]
    waiting: list[str] = []
    with pytest.raises(RunLeaseTimeoutError):
        elsewhere.hold_for_run("run-c", waiting.append)
    assert waiting == [f"Waiting for run run-b (PID {os.getpid()}) to finish with the warehouse {database}."]
    resource.release_run_lease()


def test_a_run_waiting_for_the_lease_takes_it_once_the_run_holding_it_lets_go(tmp_path):
    database = tmp_path / "jaffle.duckdb"
    first, second = (DuckDBWarehouse(database=str(database), run_wait_timeout=60) for _ in range(2))
    first.hold_for_run("run-a", print)
    log: list[str] = []
    releaser = threading.Timer(0.3, first.release_run_lease)
    releaser.start()

    second.hold_for_run("run-b", log.append)

    releaser.join()
    assert log == [
        f"Waiting for run run-a (PID {os.getpid()}) to finish with the warehouse {database}.",
        f"{LEASE_TAKEN} {database} until this run ends.",
    ]
    second.release_run_lease()


def test_dbts_target_folder_lies_beside_the_run_lease_and_only_the_runs_holding_it_ask_for_it(tmp_path):
    # In folders that do not exist yet: the lease creates them.
    database = tmp_path / "new" / "folder" / "jaffle.duckdb"
    resource = DuckDBWarehouse(database=str(database))
    with pytest.raises(RuntimeError) as caught:
        resource.dbt_target_path()
    assert str(caught.value) == "dbt_target_path() needs the run lease: call hold_for_run() first."

    resource.hold_for_run("run-a", print)
    # Kept between runs, so dbt reads its partial parse instead of parsing the project again.
    assert resource.dbt_target_path() == database.parent / "jaffle.duckdb.dbt-target"
    resource.release_run_lease()
