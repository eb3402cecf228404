"""Materialize selected, launched through the webserver's GraphQL as the UI does.

Each selection here once published an inconsistent set or nothing at all while the run went
green. Through the UI, a subset goes through the run queue to a run worker of its own, forked
from the code server's warm worker; each refused selection must leave what users read, the
catalog and the warehouse's records as they were. The same refused selections, the other partial
ones and every asset selected alone run in process in test_bad_data.py: the worker runs its
steps in process as those runs do.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_project.settings import REPO_ROOT
from tests.browser import DagsterDev, dagster_dev, wait_for_run_to_end
from tests.dagster_dev import launch_assets, step_failures
from tests.helpers import (
    ProjectEnv,
    assert_catalog_matches_warehouse,
    assert_nothing_pending,
    assert_published_consistent,
    make_project_env,
    replace_file,
)

ARTIFACTS = REPO_ROOT / "test-artifacts"
# Bounds on a busy machine, not expectations: a refused run ends within seconds of its start.
RUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> ProjectEnv:
    """A project after one good Materialize all, run in process before the server starts."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_project_env(tmp_path_factory.mktemp("selections"), monkeypatch)
        with env.instance() as instance:
            assert env.run_job(instance).success
    return env


@pytest.fixture(scope="module")
def server(ui_env: ProjectEnv) -> Iterator[DagsterDev]:
    ARTIFACTS.mkdir(exist_ok=True)
    with dagster_dev(ui_env.variables, ARTIFACTS / "dagster-dev-selections.log") as dev:
        yield dev


@pytest.fixture
def changed_file(ui_env: ProjectEnv) -> Iterator[callable]:
    """Replace a sample file's text for one test; the original comes back after it."""
    originals: dict[Path, bytes] = {}

    def change(name: str, edit) -> None:
        path = ui_env.data_dir / name
        originals.setdefault(path, path.read_bytes())
        replace_file(path, edit(path.read_text(encoding="utf-8")))

    yield change
    for path, data in originals.items():
        replace_file(path, data)


def refused(server: DagsterDev, env: ProjectEnv, selection: list[str]) -> str:
    """Launch ``selection``; once it has failed, check that nothing changed; return its failure text."""
    before = env.published_tables()
    chart = (env.chart_dir / "order_count_chart.html").read_bytes()

    run_id = launch_assets(server, selection)

    assert wait_for_run_to_end(server, run_id, RUN_TIMEOUT) == "FAILURE"
    assert env.published_tables() == before, "a refused selection changed what users read"
    assert_published_consistent(env)
    assert (env.chart_dir / "order_count_chart.html").read_bytes() == chart
    assert_nothing_pending(env)
    with env.instance() as instance:
        assert_catalog_matches_warehouse(env, instance)
    return "\n".join(step_failures(server, run_id))


def test_a_new_customer_with_customers_and_the_chart_but_not_stg_customers_is_refused(
    server, ui_env, changed_file
):
    changed_file("raw_customers.csv", lambda text: text + "101,Ann,B.\n")

    failures = refused(server, ui_env, ["raw_customers", "customers", "order_count_chart"])

    assert "raw_customers is loaded, and models that read it are rebuilt, but stg_customers" in failures
    assert "Select stg_customers too (or Materialize all)" in failures


def test_new_payments_with_customers_but_not_orders_are_refused(server, ui_env, changed_file):
    changed_file("raw_payments.csv", lambda text: text + "114,1,coupon,500\n")

    failures = refused(server, ui_env, ["raw_payments", "stg_payments", "customers", "order_count_chart"])

    assert "raw_payments changes, and orders reads it" in failures


def test_a_missing_payment_with_customers_but_not_orders_is_refused(server, ui_env, changed_file):
    changed_file(
        "raw_payments.csv",
        lambda text: "".join(line for line in text.splitlines(keepends=True) if line.split(",")[1] != "99"),
    )

    failures = refused(server, ui_env, ["raw_payments", "stg_payments", "customers", "order_count_chart"])

    # The cross-table check sits on raw_orders, which is not selected: it runs all the same.
    assert "- raw_orders: every_order_has_a_payment. 1 row(s) of raw_orders have no payment" in failures


def test_raw_customers_alone_missing_a_customer_with_orders_is_refused(server, ui_env, changed_file):
    changed_file(
        "raw_customers.csv",
        lambda text: "".join(line for line in text.splitlines(keepends=True) if not line.startswith("1,")),
    )

    failures = refused(server, ui_env, ["raw_customers"])

    assert "- raw_orders: user_id_exists_in_raw_customers." in failures
