"""Orders and payments as one file per day (``raw_orders/2018-01-01.csv``, ...), as
`make data DAILY=1` writes them: the same published tables as the single files, a bad day
named by its file and line, and the sensor reporting a new day.
"""

import hashlib
import shutil

import pytest
from dagster import AssetKey, DagsterInstance

from dagster_project.defs.ingest.csv_errors import RawFileError
from dagster_project.defs.ingest.data_source import LocalDataSource
from dagster_project.defs.ingest.tables import RAW_TABLES, combined_fingerprint, table_files
from tests.helpers import FullRun, ProjectEnv, materialize_raw, reorder_columns, replace_file, split_by_day
from tests.test_raw_files_sensor import Sensor

TABLES = {table.name: table for table in RAW_TABLES}


def test_a_daily_table_reads_its_day_files_in_day_order_and_others_read_their_one_file():
    listing = [
        "raw_customers.csv",
        "raw_orders/2018-01-02.csv",
        "raw_orders/2018-01-01.csv",
        "x/2018-01-01.csv",
    ]
    assert table_files(TABLES["raw_orders"], listing) == [
        "raw_orders/2018-01-01.csv",
        "raw_orders/2018-01-02.csv",
    ]
    assert table_files(TABLES["raw_customers"], listing) == ["raw_customers.csv"]
    assert table_files(TABLES["raw_payments"], listing) == []
    # Customers come in one file: a folder of theirs is not read.
    assert table_files(TABLES["raw_customers"], ["raw_customers/2018-01-01.csv"]) == []


def test_one_file_and_day_files_of_the_same_table_are_refused_naming_both():
    with pytest.raises(RawFileError) as refused:
        table_files(TABLES["raw_orders"], ["raw_orders.csv", "raw_orders/2018-01-01.csv"])
    assert str(refused.value) == (
        "The data folder holds both raw_orders.csv and 1 day file(s) in raw_orders/ "
        "(raw_orders/2018-01-01.csv, ...): raw_orders is read from one or the other, never both. "
        "Remove raw_orders.csv, or the raw_orders/ folder."
    )


@pytest.mark.parametrize("name", ["2018-02-30", "jan-1", "2018-1-01", "20180101"])
def test_a_day_file_not_named_after_a_real_day_is_refused(name):
    with pytest.raises(RawFileError) as refused:
        table_files(TABLES["raw_payments"], ["raw_payments/2018-01-01.csv", f"raw_payments/{name}.csv"])
    assert str(refused.value) == (
        f"raw_payments/{name}.csv: a day file's name must be its day, YYYY-MM-DD.csv (for example "
        "raw_payments/2018-01-01.csv). Rename the file, or move it out of the folder."
    )


def test_one_file_keeps_its_own_sha256_and_any_change_to_the_days_makes_a_new_version():
    assert combined_fingerprint({"raw_orders.csv": "abc"}) == "abc"
    days = {"raw_orders/2018-01-01.csv": "a", "raw_orders/2018-01-02.csv": "b"}
    versions = {
        combined_fingerprint(days),
        combined_fingerprint({"raw_orders/2018-01-01.csv": "a"}),
        combined_fingerprint({**days, "raw_orders/2018-01-02.csv": "c"}),
        combined_fingerprint({"raw_orders/2018-01-01.csv": "a", "raw_orders/2018-01-03.csv": "b"}),
    }
    assert len(versions) == 4
    assert combined_fingerprint(dict(reversed(days.items()))) == combined_fingerprint(days)
    # A table's version is kept in the catalog and in the sensor's cursor: its recipe never
    # changes, or every table would look changed after an upgrade. One day file is a day too.
    recipe = "raw_orders/2018-01-01.csv\ta\nraw_orders/2018-01-02.csv\tb\n"
    assert combined_fingerprint(days) == hashlib.sha256(recipe.encode()).hexdigest()
    one_day = "raw_orders/2018-01-01.csv\ta\n"
    assert (
        combined_fingerprint({"raw_orders/2018-01-01.csv": "a"})
        == hashlib.sha256(one_day.encode()).hexdigest()
    )


@pytest.fixture
def daily_env(project_env: ProjectEnv) -> ProjectEnv:
    split_by_day(project_env.data_dir)
    return project_env


def test_a_raw_run_on_day_files_records_their_folder_and_their_combined_sha256(daily_env, instance):
    materialize_raw(daily_env, list(TABLES), instance=instance)
    source = LocalDataSource(directory=str(daily_env.data_dir))
    for table in ("raw_orders", "raw_payments"):
        metadata = instance.get_latest_materialization_event(AssetKey(table)).asset_materialization.metadata
        assert metadata["source_file"].value == str(daily_env.data_dir / table)
        days = table_files(TABLES[table], source.list_files())
        assert metadata["source_sha256"].value == combined_fingerprint(
            {day: source.fingerprint(day) for day in days}
        )
    customers = instance.get_latest_materialization_event(AssetKey("raw_customers")).asset_materialization
    assert customers.metadata["source_file"].value == str(daily_env.data_dir / "raw_customers.csv")


def test_a_run_on_both_layouts_fails_naming_them_and_publishes_nothing(daily_env):
    materialize_raw(daily_env, list(TABLES))
    before = daily_env.published_tables()
    (daily_env.data_dir / "raw_orders.csv").write_text("id,user_id,order_date,status\n", encoding="utf-8")
    result = materialize_raw(daily_env, list(TABLES), raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    message = str(failure.step_failure_data.error.cause.message)
    assert "The data folder holds both raw_orders.csv and " in message, message
    assert "Nothing was published: raw_orders keeps its previous contents" in message
    assert daily_env.published_tables() == before


@pytest.mark.parametrize("kept", [None, 2], ids=["every day", "two days"])
def test_day_files_that_all_have_no_rows_are_refused_naming_their_folder(daily_env, kept):
    # Two files are named by their folder too, not by the first of them.
    if kept:
        for day in sorted((daily_env.data_dir / "raw_payments").iterdir())[kept:]:
            day.unlink()
    for day in (daily_env.data_dir / "raw_payments").iterdir():
        replace_file(day, "id,order_id,payment_method,amount\n")
    result = materialize_raw(daily_env, list(TABLES), raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    message = str(failure.step_failure_data.error.cause.message)
    days = len(list((daily_env.data_dir / "raw_payments").iterdir()))
    assert (
        f"The {days} day files in {daily_env.data_dir / 'raw_payments'} have a header but no rows. "
        "If an empty raw_payments is intended, set allow_empty: true"
    ) in message, message


def test_day_files_publish_exactly_what_the_single_files_publish(daily_env, sample_run: FullRun):
    # Days need not share one header: this one has its columns in another order, and one more.
    reorder_columns(sorted((daily_env.data_dir / "raw_payments").iterdir())[2])
    with daily_env.instance() as instance:
        result = daily_env.run_job(instance)
        assert result.success
        assert daily_env.published_tables() == sample_run.env.published_tables()
        assert daily_env.query("select count(*), sum(number_of_orders) from customers") == [(100, 99)]


def test_a_bad_value_in_one_day_file_names_that_file_and_line_and_publishes_nothing(daily_env, instance):
    materialize_raw(daily_env, list(TABLES), instance=instance)
    before = daily_env.published_tables()
    day = sorted((daily_env.data_dir / "raw_orders").iterdir())[3]
    lines = day.read_text(encoding="utf-8").splitlines(keepends=True)
    first = lines[1].split(",")
    lines.insert(2, f"{first[0]}9,{first[1]},2018-13-01,placed\n")
    replace_file(day, "".join(lines))

    result = materialize_raw(daily_env, list(TABLES), raise_on_error=False, instance=instance)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = str(failure.step_failure_data.error.cause.message)
    assert f"{day}, line 3: column 3 (order_date) holds '2018-13-01'" in message, message
    assert "Nothing was published: raw_orders keeps its previous contents" in message
    assert daily_env.published_tables() == before
    # The catalog still describes what is published: the good run's materializations stand.
    for table in TABLES:
        event = instance.get_latest_materialization_event(AssetKey(table))
        assert event.run_id != result.run_id
        recorded = event.asset_materialization.metadata["dagster/row_count"].value
        assert [(recorded,)] == daily_env.query(f"select count(*) from main.{table}")


def test_a_new_day_is_reported_as_a_new_version_of_the_tables_files(daily_env, instance: DagsterInstance):
    sensor = Sensor(instance, LocalDataSource(directory=str(daily_env.data_dir)))
    sensor.tick()
    first = sensor.tick()
    assert set(first) == {"raw_customers.csv", "raw_orders.csv", "raw_payments.csv"}
    assert sensor.tick() == {}

    new_day = daily_env.data_dir / "raw_orders" / "2018-05-01.csv"
    new_day.write_text("id,user_id,order_date,status\n100,1,2018-05-01,placed\n", encoding="utf-8")
    sensor.tick()  # seen, and hashed once it holds still
    second = sensor.tick()
    days = sorted(path for path in (daily_env.data_dir / "raw_orders").iterdir())
    expected = combined_fingerprint(
        {f"raw_orders/{path.name}": hashlib.sha256(path.read_bytes()).hexdigest() for path in days}
    )
    assert second == {"raw_orders.csv": expected}
    assert second["raw_orders.csv"] != first["raw_orders.csv"]

    new_day.unlink()  # a day taken away: the version it had before
    assert sensor.tick() == {"raw_orders.csv": first["raw_orders.csv"]}


def test_the_sensor_names_both_layouts_and_reports_the_other_tables(daily_env, instance: DagsterInstance):
    (daily_env.data_dir / "raw_orders.csv").write_text("id,user_id,order_date,status\n", encoding="utf-8")
    sensor = Sensor(instance, LocalDataSource(directory=str(daily_env.data_dir)))
    sensor.tick()
    assert set(sensor.tick()) == {"raw_customers.csv", "raw_payments.csv"}
    assert sensor.last.skip_reason is None
    sensor.tick()
    assert sensor.skip_message.startswith("The data folder holds both raw_orders.csv and ")


def test_the_sensor_says_each_table_it_waits_for_and_each_file_still_changing(daily_env, instance):
    (daily_env.data_dir / "raw_customers.csv").unlink()
    shutil.rmtree(daily_env.data_dir / "raw_payments")
    sensor = Sensor(instance, LocalDataSource(directory=str(daily_env.data_dir)))
    sensor.tick()
    assert sensor.skip_message.startswith(
        "Waiting for raw_customers.csv, raw_payments.csv (or day files in raw_payments/) in the "
        "data source. Waiting for raw_orders/"
    )


def test_most_days_gone_from_the_folder_is_refused_as_a_shrink_and_nothing_is_published(daily_env):
    """A sync that brought only some day files is a truncated export: the shrink check holds."""
    materialize_raw(daily_env, list(TABLES))
    before = daily_env.published_tables()
    orders = sorted((daily_env.data_dir / "raw_orders").iterdir())
    for day in orders[len(orders) // 4 :]:
        day.unlink()
    result = materialize_raw(daily_env, list(TABLES), raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    message = str((error.cause or error).message)
    left = daily_env.query(
        "select count(*) from read_csv(?, header = true)", [[str(day) for day in orders[: len(orders) // 4]]]
    )[0][0]
    assert f"raw_orders would go from 99 published rows to {left}: " in message, message
    assert daily_env.published_tables() == before
