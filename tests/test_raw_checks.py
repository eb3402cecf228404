"""Each blocking check on the raw data, one level down: load files into the build schema, run it.

The end-to-end consequences (nothing published, the run's failure message) are in
test_bad_data.py; here each check's verdict, row count and message.
"""

import uuid
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, AssetSelection, Failure, materialize

from dagster_project.defs.ingest.assets import RAW_KEYS, raw_entry, raw_tables
from dagster_project.defs.ingest.checks import Candidate, raw_checks
from dagster_project.defs.ingest.data_source import LocalDataSource
from dagster_project.defs.ingest.tables import RAW_TABLES, RawLoadConfig
from dagster_project.warehouse import publish as wap
from dagster_project.warehouse.duckdb import DuckDBSession
from tests.helpers import load_sample_tables, materialize_raw, replace_file

TABLES = {table.name: table for table in RAW_TABLES}
HEADERS = {
    "raw_customers": "id,first_name,last_name\n",
    "raw_orders": "id,user_id,order_date,status\n",
    "raw_payments": "id,order_id,payment_method,amount\n",
}


@pytest.fixture
def conn(project_env):
    """A warehouse that has published the sample tables, from the test's data folder."""
    with project_env.warehouse().get_connection() as conn:
        load_sample_tables(conn, project_env.data_dir)
        yield conn


def candidate(session: DuckDBSession, loaded: dict[str, tuple[str, str]]) -> Candidate:
    """The raw tables a run that loaded ``loaded`` (name -> version, file) would publish."""
    published = session.read_state().published
    return Candidate(
        versions={
            **{name: entry.version for name, entry in published.items()},
            **{name: version for name, (version, _) in loaded.items()},
        },
        published=published,
        loaded={
            name: raw_entry(name, version, Path(path), "sha") for name, (version, path) in loaded.items()
        },
    )


def the_check(table: str, name: str):
    (check,) = (check for check in raw_checks() if (check.table, check.name) == (table, name))
    return check


def run_check(conn, tmp_path, table: str, rows: str, check: str, folder: str = "data", **config):
    """Load ``rows`` as a new file of ``table`` (in the published files' folder unless told
    otherwise) and run one check on what a run would then publish."""
    path = tmp_path / folder / f"{table}.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text(HEADERS[table] + rows, encoding="utf-8")
    session = DuckDBSession(conn)
    version = f"{table}__{'0' * 32}"
    session.load_csv(TABLES[table], [path], allow_empty=False, into=version)
    return the_check(table, check).run(
        session, RawLoadConfig(**config), candidate(session, {table: (version, str(path))})
    )


def test_every_check_is_blocking_and_says_what_it_promises():
    shrink = (
        "The load keeps at least half the rows last published from the same folder (run config "
        "max_shrink), unless the run config sets allow_shrink."
    )
    unique = "Every id is present and appears once."
    # What the UI shows beside each check.
    assert {(check.table, check.name): check.spec.description for check in raw_checks()} == {
        ("raw_customers", "id_is_unique_and_not_null"): unique,
        ("raw_customers", "row_count_did_not_shrink"): shrink,
        ("raw_orders", "id_is_unique_and_not_null"): unique,
        ("raw_orders", "row_count_did_not_shrink"): shrink,
        ("raw_orders", "status_is_accepted"): (
            "Every status is one of: placed, shipped, completed, return_pending, returned."
        ),
        (
            "raw_orders",
            "user_id_exists_in_raw_customers",
        ): "Every user_id in raw_orders is an id in raw_customers.",
        ("raw_orders", "every_order_has_a_payment"): "Every order has at least one payment in raw_payments.",
        ("raw_payments", "id_is_unique_and_not_null"): unique,
        ("raw_payments", "row_count_did_not_shrink"): shrink,
        ("raw_payments", "payment_method_is_accepted"): (
            "Every payment_method is one of: credit_card, coupon, bank_transfer, gift_card."
        ),
        (
            "raw_payments",
            "order_id_exists_in_raw_orders",
        ): "Every order_id in raw_payments is an id in raw_orders.",
        (
            "raw_payments",
            "amount_is_not_null_or_negative",
        ): "Every payment has an amount of zero cents or more.",
    }
    assert all(check.spec.blocking for check in raw_checks())


def test_the_sample_data_passes_every_check(conn):
    session = DuckDBSession(conn)
    results = [check.run(session, RawLoadConfig(), candidate(session, {})) for check in raw_checks()]
    assert [(r.asset_key.to_user_string(), r.check_name) for r in results if not r.passed] == []
    # A check that passes says nothing more: no message, no sample.
    assert {(r.description, "sample" in r.metadata) for r in results} == {(None, False)}


@pytest.mark.parametrize(
    ("rows", "failing_rows", "described", "sample_row"),
    [
        (
            "1,1,2018-01-01,placed\n1,2,2018-01-02,placed\n2,3,2018-01-03,placed\n",
            2,
            "2 row(s) of raw_orders have a missing or repeated id: id 1 (2 rows).",
            "| 1 | 2 |",
        ),
        (
            "1,1,2018-01-01,placed\n,2,2018-01-02,placed\n",
            1,
            "1 row(s) of raw_orders have a missing or repeated id: id null (1 row).",
            "| null | 1 |",
        ),
    ],
    ids=["duplicate_id", "null_id"],
)
def test_a_duplicate_or_null_id_fails_the_id_check(conn, tmp_path, rows, failing_rows, described, sample_row):
    result = run_check(conn, tmp_path, "raw_orders", rows, "id_is_unique_and_not_null", allow_shrink=True)
    assert not result.passed
    assert result.metadata["failing_rows"].value == failing_rows
    assert result.description == described
    # The run's page shows the offending values as a table; a missing one reads "null".
    assert result.metadata["sample"].value == f"| id | rows |\n| --- | --- |\n{sample_row}"


def test_an_unknown_order_status_fails_naming_the_value_and_its_rows(conn, tmp_path):
    rows = "1,1,2018-01-01,placed\n2,1,2018-01-02,lost\n3,2,2018-01-03,lost\n"
    result = run_check(conn, tmp_path, "raw_orders", rows, "status_is_accepted", allow_shrink=True)
    assert not result.passed
    assert result.metadata["failing_rows"].value == 2
    assert result.metadata["sample"].value == "| status | rows |\n| --- | --- |\n| lost | 2 |"
    assert result.description.startswith("2 row(s) of raw_orders have a status outside the accepted values")
    assert result.description.endswith(": status 'lost' (2 rows).")


@pytest.mark.parametrize(
    ("table", "rows", "check"),
    [
        ("raw_orders", "1,1,2018-01-01,placed\n2,1,2018-01-02,\n", "status_is_accepted"),
        ("raw_payments", "1,1,credit_card,100\n2,1,,200\n", "payment_method_is_accepted"),
    ],
    ids=["status", "payment_method"],
)
def test_a_missing_status_or_payment_method_fails_its_accepted_values_check(
    conn, tmp_path, table, rows, check
):
    # No dbt test catches it downstream: dbt's accepted_values passes nulls.
    result = run_check(conn, tmp_path, table, rows, check, allow_shrink=True)
    assert not result.passed
    assert result.metadata["failing_rows"].value == 1
    assert result.description.endswith(" null (1 row).")


def test_a_failure_shows_the_five_commonest_values_then_counts_the_rest_and_samples_ten(conn, tmp_path):
    statuses = [f"s{n:02}" for n in range(12)]
    # s00 on three rows, s01 on two, the others on one each.
    rows = "".join(
        f"{i},1,2018-01-01,{status}\n" for i, status in enumerate(["s00", "s00", "s01", *statuses], 1)
    )
    result = run_check(conn, tmp_path, "raw_orders", rows, "status_is_accepted", allow_shrink=True)
    assert result.description.endswith(
        ": status 's00' (3 rows), 's01' (2 rows), 's02' (1 row), 's03' (1 row), 's04' (1 row) and 7 more."
    )
    assert result.metadata["failing_rows"].value == 15
    assert result.metadata["distinct_failing_values"].value == 12
    assert len(result.metadata["sample"].value.splitlines()) == 2 + 10


@pytest.mark.parametrize(("distinct", "more"), [(5, ""), (6, " and 1 more")])
def test_more_than_five_values_end_with_how_many_more(conn, tmp_path, distinct, more):
    rows = "".join(f"{i},1,2018-01-01,s{i}\n" for i in range(1, distinct + 1))
    result = run_check(conn, tmp_path, "raw_orders", rows, "status_is_accepted", allow_shrink=True)
    assert result.description.endswith(f"'s5' (1 row){more}.")


def test_an_unknown_payment_method_fails(conn, tmp_path):
    rows = "1,1,credit_card,100\n2,1,bitcoin,200\n"
    result = run_check(conn, tmp_path, "raw_payments", rows, "payment_method_is_accepted", allow_shrink=True)
    assert result.description.endswith(": payment_method 'bitcoin' (1 row).")


def test_an_order_of_an_unknown_customer_fails_the_reference_check(conn, tmp_path):
    rows = "1,1,2018-01-01,placed\n2,999,2018-01-02,placed\n"
    result = run_check(
        conn, tmp_path, "raw_orders", rows, "user_id_exists_in_raw_customers", allow_shrink=True
    )
    assert result.description == (
        "1 row(s) of raw_orders have a user_id that is not an id in raw_customers: user_id 999 (1 row)."
    )


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("-500", "amount -500 (1 row)"), ("", "amount null (1 row)")],
    ids=["negative", "null"],
)
def test_a_negative_or_missing_amount_fails_the_amount_check(conn, tmp_path, amount, shown):
    rows = "1,1,credit_card,1000\n2,2,coupon,0\n" + f"3,3,coupon,{amount}\n"
    result = run_check(
        conn, tmp_path, "raw_payments", rows, "amount_is_not_null_or_negative", allow_shrink=True
    )
    assert not result.passed
    assert result.description == f"1 row(s) of raw_payments have a missing or negative amount: {shown}."


def test_an_order_without_a_payment_fails_naming_the_order(conn, project_env, tmp_path):
    payments = (project_env.data_dir / "raw_payments.csv").read_text(encoding="utf-8").splitlines()
    rows = "".join(f"{line}\n" for line in payments[1:] if line.split(",")[1] != "99")
    result = run_check(conn, tmp_path, "raw_payments", rows, "order_id_exists_in_raw_orders")
    assert result.passed
    session = DuckDBSession(conn)
    loaded = {"raw_payments": (f"raw_payments__{'0' * 32}", str(tmp_path / "data" / "raw_payments.csv"))}
    result = the_check("raw_orders", "every_order_has_a_payment").run(
        session, RawLoadConfig(), candidate(session, loaded)
    )
    assert not result.passed
    assert result.description == "1 row(s) of raw_orders have no payment in raw_payments: id 99 (1 row)."


def test_a_load_that_halves_a_table_fails_giving_the_numbers(conn, tmp_path):
    rows = "".join(f"{n},Ann,B.\n" for n in range(1, 50))
    result = run_check(conn, tmp_path, "raw_customers", rows, "row_count_did_not_shrink")
    assert not result.passed
    assert result.description == (
        "raw_customers would go from 100 published rows to 49: 51% fewer, more than the 50% allowed "
        "(max_shrink). If the smaller file is right, materialize again with allow_shrink: true in the "
        "run config; otherwise export the file again."
    )
    assert result.metadata["published_rows"].value == 100
    assert result.metadata["loaded_rows"].value == 49
    assert result.metadata["lost_share"].value == 0.51


def test_the_shrink_check_compares_with_the_rows_the_last_load_counted_without_counting_again(conn, tmp_path):
    # load_sample_tables publishes entries as loads did before they recorded their rows, which
    # the check counts; one that records them is believed, a version never changing.
    session = DuckDBSession(conn)
    published = session.read_state().published["raw_customers"]
    session.commit_publish(str(uuid.uuid4()), {"raw_customers": replace(published, rows=200)})
    rows = "".join(f"{n},Ann,B.\n" for n in range(1, 100))
    result = run_check(conn, tmp_path, "raw_customers", rows, "row_count_did_not_shrink")
    assert not result.passed
    assert result.metadata["published_rows"].value == 200
    assert result.metadata["loaded_rows"].value == 99


def test_a_shrink_within_the_limit_or_allowed_by_the_run_config_passes(conn, tmp_path):
    half = "".join(f"{n},Ann,B.\n" for n in range(1, 51))
    assert run_check(conn, tmp_path, "raw_customers", half, "row_count_did_not_shrink").passed
    tenth = "".join(f"{n},Ann,B.\n" for n in range(1, 11))
    assert not run_check(
        conn, tmp_path, "raw_customers", tenth, "row_count_did_not_shrink", max_shrink=0.8
    ).passed
    allowed = run_check(conn, tmp_path, "raw_customers", tenth, "row_count_did_not_shrink", allow_shrink=True)
    assert allowed.passed
    assert allowed.description.endswith("Accepted because the run config sets allow_shrink.")


def test_a_check_against_a_table_never_loaded_fails_saying_what_to_materialize(project_env, tmp_path):
    with project_env.warehouse().get_connection() as conn:
        result = run_check(
            conn, tmp_path, "raw_orders", "1,1,2018-01-01,placed\n", "every_order_has_a_payment"
        )
        reference = run_check(
            conn, tmp_path, "raw_orders", "1,1,2018-01-01,placed\n", "user_id_exists_in_raw_customers"
        )
    assert (reference.check_name, reference.passed) == ("user_id_exists_in_raw_customers", False)
    assert (result.asset_key, result.check_name) == (AssetKey("raw_orders"), "every_order_has_a_payment")
    assert not result.passed
    assert result.severity == AssetCheckSeverity.ERROR
    assert result.description == (
        "raw_orders cannot be checked against raw_payments, which has never been loaded. "
        "Materialize raw_payments together with raw_orders (or Materialize all)."
    )


def test_a_file_from_another_folder_is_another_data_set_not_a_shrunk_export(conn, tmp_path):
    tenth = "".join(f"{i},A,B.\n" for i in range(1, 11))
    result = run_check(conn, tmp_path, "raw_customers", tenth, "row_count_did_not_shrink", folder="other")
    assert result.passed
    assert result.description is None
    assert result.metadata["compared_with_last_publish"].value is False
    assert result.metadata["published_rows"].value == 0


# The raw step: every check that reads a loaded table guards the publish.


def raw_step_failure(result) -> str:
    """The message of the raw step's failure, as the run's page shows it."""
    (event,) = result.get_step_failure_events()
    return event.step_failure_data.user_failure_data.description


def test_a_raw_step_whose_check_fails_publishes_nothing_and_says_which_check_on_which_table(
    project_env, instance
):
    with project_env.warehouse().get_connection() as conn:
        load_sample_tables(conn, project_env.data_dir)
    orders = project_env.data_dir / "raw_orders.csv"
    orders.write_text(orders.read_text(encoding="utf-8").replace(",placed\n", ",lost\n", 1), encoding="utf-8")

    result = materialize_raw(project_env, ["raw_orders"], instance=instance, raise_on_error=False)

    assert not result.success
    assert raw_step_failure(result) == (
        "A blocking check on the raw data failed, so nothing was published: the tables users read "
        "and the chart are unchanged.\n- raw_orders: status_is_accepted. 1 row(s) of raw_orders have a "
        "status outside the accepted values (placed, shipped, completed, return_pending, returned): "
        "status 'lost' (1 row)."
    )
    assert project_env.query("select count(*) from main.raw_orders where status = 'lost'") == [(0,)]


def test_a_check_of_an_unselected_table_that_reads_a_loaded_one_blocks_the_publish(project_env, instance):
    # Payments alone are loaded; raw_orders' every_order_has_a_payment check reads them.
    with project_env.warehouse().get_connection() as conn:
        load_sample_tables(conn, project_env.data_dir)
    payments = project_env.data_dir / "raw_payments.csv"
    lines = payments.read_text(encoding="utf-8").splitlines(keepends=True)
    payments.write_text("".join(line for line in lines if line.split(",")[1] != "99"), encoding="utf-8")

    result = materialize_raw(project_env, ["raw_payments"], instance=instance, raise_on_error=False)

    assert raw_step_failure(result).endswith(
        "\n- raw_orders: every_order_has_a_payment. 1 row(s) of raw_orders have no payment in "
        "raw_payments: id 99 (1 row)."
    )
    assert project_env.query("select count(*) from main.raw_payments where order_id = 99") == [(1,)]


@pytest.mark.parametrize(
    ("loaded", "dropped", "blocked_by"),
    [
        (
            "raw_customers",
            "1,Michael,P.\n",
            "- raw_orders: user_id_exists_in_raw_customers. 2 row(s) of raw_orders have a user_id that "
            "is not an id in raw_customers: user_id 1 (2 rows).",
        ),
        (
            "raw_orders",
            "1,1,2018-01-01,returned\n",
            "- raw_payments: order_id_exists_in_raw_orders. 1 row(s) of raw_payments have a order_id "
            "that is not an id in raw_orders: order_id 1 (1 row).",
        ),
    ],
    ids=["customer", "order"],
)
def test_a_row_removed_that_another_table_refers_to_blocks_the_publish_naming_the_reference(
    project_env, instance, loaded, dropped, blocked_by
):
    with project_env.warehouse().get_connection() as conn:
        load_sample_tables(conn, project_env.data_dir)
    path = project_env.data_dir / f"{loaded}.csv"
    before = project_env.query(f"select count(*) from main.{loaded}")
    replace_file(path, path.read_text(encoding="utf-8").replace(dropped, "", 1))

    result = materialize_raw(project_env, [loaded], instance=instance, raise_on_error=False)

    assert raw_step_failure(result).endswith(f"\n{blocked_by}")
    assert project_env.query(f"select count(*) from main.{loaded}") == before


def test_a_selection_that_skips_a_model_between_a_loaded_table_and_a_rebuilt_one_runs_nothing(
    project_env, instance
):
    # orders reads raw_orders through stg_orders; rebuilt without it, it would read old data.
    selection = [AssetKey("raw_orders"), AssetKey("raw_payments"), AssetKey("orders")]

    result = project_env.run_job(instance, asset_selection=selection)

    refusal = (
        "This selection cannot keep the published tables consistent, so nothing was run:\n"
        "- raw_orders is loaded, and models that read it are rebuilt, but stg_orders between them "
        "is not selected.\n"
        "- raw_payments is loaded, and models that read it are rebuilt, but stg_payments between "
        "them is not selected.\n"
        "Select stg_orders, stg_payments too (or Materialize all), then materialize again."
    )
    # Each step refuses before it starts, whichever Dagster runs first.
    failures = result.get_step_failure_events()
    assert {event.step_key: event.step_failure_data.user_failure_data.description for event in failures} == {
        "raw_tables": refusal,
        "jaffle_shop_dbt_assets": refusal,
    }
    assert not project_env.database.exists()


def refuse_unordered(project_env, selected: set[AssetKey]) -> None:
    """What each step of a run of ``selected`` asks first (``refuse_unordered_selection``)."""
    job = SimpleNamespace(
        asset_layer=SimpleNamespace(
            asset_graph=project_env.defs().resolve_asset_graph(), selected_asset_keys=selected
        )
    )
    wap.refuse_unordered_selection(SimpleNamespace(job_def=job), RAW_KEYS)


def test_a_selection_that_skips_two_models_between_a_loaded_table_and_a_rebuilt_one_names_both(project_env):
    # The chart reads customers, which reads raw_customers through stg_customers.
    with pytest.raises(Failure) as refused:
        refuse_unordered(project_env, {AssetKey("raw_customers"), AssetKey("order_count_chart")})

    assert refused.value.description == (
        "This selection cannot keep the published tables consistent, so nothing was run:\n"
        "- raw_customers is loaded, and models that read it are rebuilt, but customers, "
        "stg_customers between them are not selected.\n"
        "Select customers, stg_customers too (or Materialize all), then materialize again."
    )


def test_a_selection_that_loads_no_raw_table_runs_whatever_models_it_skips(project_env):
    # The chart is redrawn from the published customers; dbt rebuilds stg_customers alone.
    refuse_unordered(project_env, {AssetKey("stg_customers"), AssetKey("order_count_chart")})


def test_a_check_run_alone_on_a_table_never_loaded_fails_saying_what_to_materialize(project_env, instance):
    # A re-run of one check from the UI: its table was never loaded, so there is nothing to check.
    check = AssetCheckKey(AssetKey("raw_orders"), "status_is_accepted")
    result = materialize(
        [raw_tables],
        selection=AssetSelection.checks(check),
        resources={
            "duckdb": project_env.warehouse(),
            "data_source": LocalDataSource(directory=str(project_env.data_dir)),
        },
        instance=instance,
        raise_on_error=False,
    )

    (evaluation,) = result.get_asset_check_evaluations()
    assert (evaluation.asset_check_key, evaluation.passed) == (check, False)
    assert evaluation.description == (
        "raw_orders has never been loaded, so status_is_accepted cannot run. Materialize raw_orders "
        "(or Materialize all)."
    )
