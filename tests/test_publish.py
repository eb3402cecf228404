"""Write-audit-publish one level down: versions, publishing, consistency and clean-up, on a
DuckDB file of the test's own (no Dagster run); the last test runs a raw step, for what ``begin``
cleans up after a run that ended."""

import re
import time
import uuid
from types import SimpleNamespace

import duckdb
import pytest
from dagster import (
    AssetCheckResult,
    AssetKey,
    AssetMaterialization,
    DagsterEvent,
    DagsterEventType,
    EventLogEntry,
    TableColumn,
    TableSchema,
    job,
    op,
)
from dagster._core.events import StepMaterializationData

from dagster_project.defs.ingest.assets import raw_entry
from dagster_project.defs.ingest.tables import RAW_TABLES
from dagster_project.defs.transform.assets import BuiltModel, freeze_waves
from dagster_project.warehouse import Entry, version_name
from dagster_project.warehouse import publish as wap
from dagster_project.warehouse.duckdb import DuckDBSession
from tests.helpers import materialize_raw


@pytest.fixture
def session(tmp_path):
    with duckdb.connect(str(tmp_path / "shop.duckdb")) as conn:
        yield DuckDBSession(conn)


def new_run() -> str:
    return str(uuid.uuid4())


def load_raw(session, run_id: str, cents: int, fingerprint: str) -> dict[str, Entry]:
    """What a raw step builds: a version of ``raw`` of its own."""
    version = version_name("raw", run_id)
    session.read_state()  # creates the schemas
    session.conn.execute(f"create table jaffle_build.{version} as select {cents} as cents")
    return {"raw": Entry(version, "table", {"raw": fingerprint})}


def build_models(session, run_id: str, fingerprint: str) -> dict[str, Entry]:
    """What a dbt step builds on the workspace: a view over ``raw`` and a table from the view."""
    # As the dbt step does: the models dbt rebuilds get no pointer.
    pointers = wap.reset_workspace(session, run_id, rebuilt={"stg", "mart"})
    view_sql = "select cents / 100 as dollars from jaffle_build.raw"
    session.conn.execute(f"create or replace view jaffle_build.stg as {view_sql}")
    # dbt replaces the pointer view with the table it builds.
    session.conn.execute("drop view if exists jaffle_build.mart")
    session.conn.execute("create table jaffle_build.mart as from jaffle_build.stg")
    session.freeze("mart", version_name("mart", run_id), None, pointers)
    session.freeze("stg", version_name("stg", run_id), view_sql, pointers)
    inputs = {"raw": fingerprint}
    return {
        "mart": Entry(version_name("mart", run_id), "table", inputs),
        "stg": Entry(version_name("stg", run_id), "view", inputs, reads=[pointers["raw"]]),
    }


def published(session) -> tuple:
    return tuple(session.conn.execute(f"from main.{name}").fetchone()[0] for name in ("raw", "stg", "mart"))


def publish_all(session, cents: int, fingerprint: str) -> str:
    run_id = new_run()
    session.stage(run_id, load_raw(session, run_id, cents, fingerprint))
    wap.publish(session, run_id, build_models(session, run_id, fingerprint), print)
    return run_id


def main_objects(session) -> dict[str, str]:
    tables = session.conn.execute(
        "select table_name from duckdb_tables() where schema_name = 'main'"
    ).fetchall()
    views = session.conn.execute(
        "select view_name from duckdb_views() where schema_name = 'main' and not internal"
    ).fetchall()
    return {**{name: "table" for (name,) in tables}, **{name: "view" for (name,) in views}}


def test_publishing_makes_every_name_a_view_over_the_runs_versions_and_copies_nothing(session):
    run_id = publish_all(session, 500, "a")
    assert published(session) == (500, 5, 5)
    assert main_objects(session) == {"raw": "view", "stg": "view", "mart": "view"}
    # The published table is the very version the run built, not a copy of it.
    (sql,) = session.conn.execute("select sql from duckdb_views() where view_name = 'mart'").fetchone()
    assert version_name("mart", run_id) in sql


def test_nothing_is_visible_until_publish(session):
    run_id = new_run()
    session.stage(run_id, load_raw(session, run_id, 500, "a"))
    build_models(session, run_id, "a")
    assert main_objects(session) == {}


def test_a_published_view_keeps_reading_the_version_it_was_built_on(session):
    publish_all(session, 500, "a")
    later = new_run()
    # A later run points the workspace at a raw version of its own; the published view stays.
    session.stage(later, load_raw(session, later, 900, "b"))
    wap.reset_workspace(session, later)
    assert session.conn.execute("from jaffle_build.raw").fetchone() == (900,)
    assert published(session) == (500, 5, 5)


def test_publishing_a_changed_raw_table_without_the_models_that_read_it_is_refused(session):
    publish_all(session, 500, "a")
    run_id = new_run()
    with pytest.raises(wap.PublishRefusedError) as refused:
        wap.publish(session, run_id, load_raw(session, run_id, 900, "b"), print)
    assert str(refused.value) == (
        "Nothing was published: the tables users read would disagree with each other.\n"
        "- raw changes, and mart, stg read it but would not be rebuilt from it in this run.\n"
        "Select mart, stg too (or Materialize all), then materialize again."
    )
    assert published(session) == (500, 5, 5)


def test_an_unchanged_raw_file_may_be_published_alone(session):
    publish_all(session, 500, "a")
    run_id = new_run()
    wap.publish(session, run_id, load_raw(session, run_id, 500, "a"), print)
    assert published(session) == (500, 5, 5)


def test_a_failed_run_leaves_no_object_of_its_own(session):
    publish_all(session, 500, "a")
    before = session.build_objects()
    run_id = new_run()
    session.stage(run_id, load_raw(session, run_id, 900, "b"))
    build_models(session, run_id, "b")
    wap.discard(session, run_id)
    wap.reset_workspace(session, None)
    assert not [name for name in session.build_objects() if run_id.replace("-", "") in name]
    assert session.read_state().pending == {}
    assert set(session.build_objects()) == set(before) | {"raw", "stg", "mart"}
    assert published(session) == (500, 5, 5)


def test_a_refusal_names_each_changed_table_and_what_reads_it():
    found = {"raw_orders": ["stg_orders"], "raw_payments": ["orders", "stg_payments"]}
    assert wap.refusal(found).splitlines()[1:] == [
        "- raw_orders changes, and stg_orders reads it but would not be rebuilt from it in this run.",
        "- raw_payments changes, and orders, stg_payments read it but would not be rebuilt from it in this run.",
        "Select orders, stg_orders, stg_payments too (or Materialize all), then materialize again.",
    ]


def test_what_a_failed_run_built_in_the_workspace_is_dropped_so_no_later_run_reads_it(session):
    publish_all(session, 500, "a")
    session.conn.execute("create table jaffle_build.new_model as select 1 as x")

    wap.reset_workspace(session, None)

    assert "new_model" not in session.build_objects()
    assert session.conn.execute("from jaffle_build.mart").fetchone() == (5,)


def test_the_models_dbt_rebuilds_are_left_for_it_to_replace_and_the_rest_read_as_published(session):
    publish_all(session, 500, "a")
    # A run killed while dbt ran left a mart of its own in the workspace.
    session.conn.execute("create or replace table jaffle_build.mart as select 1 as dollars")
    run_id = new_run()

    pointers = wap.reset_workspace(session, run_id, rebuilt={"mart"})

    # No pointer for the mart: dbt replaces whatever is there. Nothing dropped it either.
    assert set(pointers) == {"raw", "stg"}
    assert session.build_objects()["mart"] == "table"
    # What dbt reads and does not rebuild reads the published versions.
    assert session.conn.execute("from jaffle_build.stg").fetchone() == (5,)
    assert published(session) == (500, 5, 5)


def test_dbt_views_are_kept_after_the_models_of_the_run_they_read_and_tables_at_once():
    def model(name: str, view: bool, *parents: str) -> BuiltModel:
        return BuiltModel(name, "select 1" if view else None, parents, ())

    stg, mart, report, summary = (
        model("stg", True, "raw"),
        model("mart", False, "stg"),
        model("report", True, "mart"),
        model("summary", True, "report", "stg"),
    )
    waves = [[model.name for model in wave] for wave in freeze_waves([summary, report, mart, stg])]
    assert waves == [["mart", "stg"], ["report"], ["summary"]]


def test_discarding_a_run_drops_its_own_versions_only(session):
    publish_all(session, 500, "a")
    failed, in_flight = new_run(), new_run()
    session.stage(in_flight, load_raw(session, in_flight, 700, "b"))
    session.stage(failed, load_raw(session, failed, 900, "c"))

    assert wap.discard(session, failed) == [version_name("raw", failed)]

    assert version_name("raw", in_flight) in session.build_objects()
    assert list(session.read_state().pending) == [in_flight]
    assert published(session) == (500, 5, 5)


def test_the_failure_message_lists_each_failed_check_on_a_line_of_its_own():
    failed = [
        AssetCheckResult(
            asset_key="raw_orders", check_name="status_is_accepted", passed=False, description="2 rows."
        ),
        AssetCheckResult(asset_key="orders", check_name="not_null_orders_amount", passed=False),
    ]
    assert wap.failure_summary(failed, "A dbt test") == (
        "A dbt test failed, so nothing was published: the tables users read and the chart are unchanged.\n"
        "- raw_orders: status_is_accepted. 2 rows.\n"
        "- orders: not_null_orders_amount."
    )


def test_ended_runs_versions_go_once_nothing_published_reads_them(session):
    first = publish_all(session, 500, "a")
    second = publish_all(session, 700, "b")
    in_flight = new_run()
    session.stage(in_flight, load_raw(session, in_flight, 900, "c"))
    ended = {first.replace("-", "")}

    dropped, forgotten = wap.collect_garbage(session, lambda keys: ended & set(keys), new_run())

    assert sorted(dropped) == sorted(version_name(name, first) for name in ("raw", "stg", "mart"))
    assert forgotten == {}
    objects = session.build_objects()
    assert all(version_name(name, second) in objects for name in ("raw", "stg", "mart"))
    # A run the instance does not say has ended keeps everything, pending record included.
    assert version_name("raw", in_flight) in objects
    assert in_flight in session.read_state().pending
    assert published(session) == (700, 7, 7)


def test_an_ended_runs_pending_record_is_forgotten_with_its_versions(session):
    publish_all(session, 500, "a")
    failed, this_run = new_run(), new_run()
    session.stage(failed, load_raw(session, failed, 900, "b"))
    session.stage(this_run, load_raw(session, this_run, 700, "c"))
    ended = {failed.replace("-", ""), this_run.replace("-", "")}

    dropped, forgotten = wap.collect_garbage(session, lambda keys: ended & set(keys), this_run)

    assert (dropped, forgotten) == ([version_name("raw", failed)], {failed: ["raw"]})
    # The run cleaning up keeps its own versions and record, whatever the instance says of it.
    assert list(session.read_state().pending) == [this_run]
    assert version_name("raw", this_run) in session.build_objects()


def test_publishing_logs_what_it_published_and_how_long_the_metadata_change_took(session):
    lines: list[str] = []
    run_id = new_run()

    session.stage(run_id, load_raw(session, run_id, 500, "a"))

    wap.publish(session, run_id, build_models(session, run_id, "a"), lines.append)

    # The staged raw table is published with the models; the benchmark reads the seconds.
    (line,) = lines
    assert re.fullmatch(r"Published mart, raw, stg in 0\.\d{3} s\.", line), line


def test_a_version_a_published_view_reads_is_kept(session):
    first = publish_all(session, 500, "a")
    # The same file again, published alone: the published stg still reads the first raw version.
    again = new_run()
    wap.publish(session, again, load_raw(session, again, 500, "a"), print)
    ended = {first.replace("-", ""), again.replace("-", "")}
    wap.collect_garbage(session, lambda keys: ended & set(keys), new_run())
    assert published(session) == (500, 5, 5)


def test_publish_is_one_transaction(session):
    publish_all(session, 500, "a")
    run_id = new_run()
    entries = build_models(session, run_id, "a")
    # The second view cannot be created: nothing of the publish may be seen.
    entries["stg"] = Entry("missing_version", "view", {"raw": "a"})
    with pytest.raises(duckdb.Error):
        wap.publish(session, run_id, entries, print)
    assert published(session) == (500, 5, 5)
    (sql,) = session.conn.execute("select sql from duckdb_views() where view_name = 'mart'").fetchone()
    assert run_id.replace("-", "") not in sql


def test_the_catalog_records_the_columns_of_each_published_object_and_the_rows_of_its_tables(session):
    run_id = new_run()
    raw = load_raw(session, run_id, 500, "a")
    session.stage(run_id, raw)
    models = build_models(session, run_id, "a")
    wap.publish(session, run_id, models, print)
    never_published = {"old": Entry(version_name("old", run_id), "view", {})}

    metadata = session.table_metadata({**raw, **models, **never_published})

    assert metadata == {
        "raw": {
            "dagster/column_schema": TableSchema([TableColumn("cents", "INTEGER")]),
            "dagster/row_count": 1,
        },
        "mart": {
            "dagster/column_schema": TableSchema([TableColumn("dollars", "DOUBLE")]),
            "dagster/row_count": 1,
        },
        # A view is not counted: that would run its query again.
        "stg": {"dagster/column_schema": TableSchema([TableColumn("dollars", "DOUBLE")])},
        "old": {},
    }


# What a step does first (``begin``), in a real raw step: clean up after a run that ended.


@op
def died() -> None:
    pass


@job
def dead_job() -> None:
    died()


def test_a_step_drops_what_an_ended_run_left_pending_says_so_and_restores_the_catalog(project_env, instance):
    materialize_raw(project_env, ["raw_customers", "raw_orders", "raw_payments"], instance=instance)
    (published,) = instance.fetch_materializations(AssetKey("raw_customers"), limit=1).records
    # A run that loaded two tables, recorded raw_customers for its dbt step, and died before publishing.
    dead = instance.create_run_for_job(job_def=dead_job)
    versions = [version_name(table.name, dead.run_id) for table in RAW_TABLES[:2]]
    with project_env.warehouse().get_connection() as conn:
        session = DuckDBSession(conn)
        staged = {}
        for table, version in zip(RAW_TABLES[:2], versions, strict=True):
            path = project_env.data_dir / table.file_name
            session.load_csv(table, [path], allow_empty=False, into=version)
            staged[table.name] = raw_entry(table.name, version, path, "sha")
        session.stage(dead.run_id, staged)
    materialized = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name=dead.job_name,
        event_specific_data=StepMaterializationData(AssetMaterialization("raw_customers")),
    )
    instance.handle_new_event(
        EventLogEntry(None, "DEBUG", "", dead.run_id, time.time(), dagster_event=materialized)
    )
    instance.report_run_failed(dead, "The run's process is gone.")

    result = materialize_raw(project_env, ["raw_payments"], instance=instance)

    logged = [event.message for event in instance.all_logs(result.run_id)]
    assert f"Dropped 2 version(s) that no published name reads: {', '.join(versions)}." in logged
    assert f"Run {dead.run_id[:8]} ended without publishing raw_customers, raw_orders." in logged
    with project_env.warehouse().get_connection() as conn:
        session = DuckDBSession(conn)
        assert not set(versions) & set(session.build_objects())
        assert session.read_state().pending == {}
    # The catalog shows the published data again, not what the dead run recorded.
    (latest,) = instance.fetch_materializations(AssetKey("raw_customers"), limit=1).records
    assert latest.asset_materialization.description == (
        f"Unchanged: run {dead.run_id[:8]} failed before publishing, so raw_customers is still the "
        f"data of run {published.run_id[:8]}."
    )


def test_the_clean_up_runs_once_a_run_when_it_takes_the_lease_not_again_at_each_later_step(
    project_env, instance
):
    warehouse = project_env.warehouse()
    logged: list[str] = []
    run_id = new_run()
    context = SimpleNamespace(
        op_execution_context=SimpleNamespace(run_id=run_id),
        log=SimpleNamespace(info=logged.append, warning=logged.append),
        run=SimpleNamespace(tags={}),
        retry_number=0,
        instance=instance,
    )

    def left_by_a_dead_run() -> str:
        dead = instance.create_run_for_job(job_def=dead_job)
        instance.report_run_failed(dead, "The run's process is gone.")
        version = version_name("raw_customers", dead.run_id)
        with warehouse.get_connection() as conn:
            DuckDBSession(conn).read_state()  # creates the schemas
            conn.execute(f"create table jaffle_build.{version} as select 1 as id")
        return version

    try:
        first = left_by_a_dead_run()
        wap.begin(context, warehouse)
        assert f"Dropped 1 version(s) that no published name reads: {first}." in logged
        # A later step of the run, in the process that holds the lease: no other run can have
        # written since the first step's clean-up, so it does not list the warehouse again.
        second = left_by_a_dead_run()
        logged.clear()
        wap.begin(context, warehouse)
        assert logged == []
        with warehouse.get_connection() as conn:
            assert second in DuckDBSession(conn).build_objects()
    finally:
        warehouse.release_run_lease()
