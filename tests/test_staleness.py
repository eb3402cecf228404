"""Stale or not, as the UI shows it: each asset's ``staleStatus`` from the webserver's GraphQL API.

One full run for the module (``sample_run``); each test leaves the files as it found them.
Dagster marks an asset stale when one of its direct inputs has a new data or code version, so
a changed raw file makes its staging model stale; the marts follow once that model is rebuilt.
"""

from collections.abc import Iterator

import pytest
from dagster import AssetKey, Definitions

from dagster_project.defs import ingest
from tests.changed_loader import NEW_LOADER_VERSION, with_rebuilt_raw_orders
from tests.helpers import PROJECT_ASSETS, FullRun, UIGraphQL, ui_graphql_for

ALL = set(PROJECT_ASSETS)
# raw_orders feeds only stg_orders.
CHILDREN_OF_RAW_ORDERS = {"stg_orders"}

STALE_STATUS = "{ assetNodes { assetKey { path } staleStatus } }"


@pytest.fixture(scope="module")
def ui(sample_run: FullRun) -> Iterator[UIGraphQL]:
    with ui_graphql_for(sample_run.instance) as graphql:
        yield graphql


def stale_assets(ui: UIGraphQL) -> set[str]:
    statuses = {
        "/".join(node["assetKey"]["path"]): node["staleStatus"] for node in ui(STALE_STATUS)["assetNodes"]
    }
    assert set(statuses) == ALL
    assert "MISSING" not in statuses.values()
    return {name for name, status in statuses.items() if status == "STALE"}


def reload_raw_orders(sample_run: FullRun, defs: Definitions | None = None) -> None:
    defs = defs or sample_run.env.defs()
    result = defs.resolve_job_def("jaffle_shop_job").execute_in_process(
        instance=sample_run.instance, asset_selection=[AssetKey("raw_orders")]
    )
    assert result.success


def test_nothing_is_stale_after_a_full_run(sample_run, ui):
    assert sample_run.result.success
    assert stale_assets(ui) == set()


def test_a_changed_csv_makes_its_model_stale_until_it_is_changed_back(sample_run, ui):
    orders = sample_run.env.data_dir / "raw_orders.csv"
    original = orders.read_bytes()
    try:
        orders.write_bytes(original.replace(b",returned", b",completed", 1))
        # Until the raw asset reloads, Dagster cannot know the file changed: the sensor's job.
        assert stale_assets(ui) == set()
        reload_raw_orders(sample_run)
        assert stale_assets(ui) == CHILDREN_OF_RAW_ORDERS
    finally:
        orders.write_bytes(original)
    # The same bytes give the same data version as the one downstream was built from.
    reload_raw_orders(sample_run)
    assert stale_assets(ui) == set()


def test_a_changed_code_version_makes_the_asset_then_its_model_stale(sample_run, ui, monkeypatch):
    # The UI of the changed code: a code server loading tests/changed_loader_definitions.py.
    with ui_graphql_for(sample_run.instance, "tests.changed_loader_definitions") as changed_ui:
        assert stale_assets(changed_ui) == {"raw_orders"}
        monkeypatch.setattr(ingest, "INGEST_CODE_VERSION", NEW_LOADER_VERSION)
        try:
            # Reloaded by the new code, the same file makes a new table: its model is now stale.
            reload_raw_orders(sample_run, with_rebuilt_raw_orders(sample_run.env.defs()))
            assert stale_assets(changed_ui) == CHILDREN_OF_RAW_ORDERS
        finally:
            monkeypatch.undo()
            reload_raw_orders(sample_run)
    assert stale_assets(ui) == set()
