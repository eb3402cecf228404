"""Stale or not, as the UI shows it: each asset's ``staleStatus`` from the webserver's GraphQL API.

One full run for the module (``sample_run``); each test leaves the files as it found them.
Dagster marks an asset stale when one of its direct inputs has a new data or code version. A
changed raw file is published only together with the models that read it (write-audit-publish
keeps them consistent), so what a reload leaves stale is what reads those models and was not
selected: the chart.
"""

from collections.abc import Iterator

import pytest
from dagster import AssetKey, Definitions

from dagster_project.defs.ingest import assets as ingest
from tests.changed_loader import NEW_LOADER_VERSION, with_rebuilt_raw_orders
from tests.helpers import FILE_ASSETS, PROJECT_ASSETS, FullRun, UIGraphQL, ui_graphql_for

ALL = set(PROJECT_ASSETS)
# raw_orders and every model that reads it; the chart reads customers.
RAW_ORDERS_AND_READERS = ("raw_orders", "stg_orders", "orders", "customers")

STALE_STATUS = "{ assetNodes { assetKey { path } staleStatus } }"


@pytest.fixture(scope="module")
def ui(sample_run: FullRun) -> Iterator[UIGraphQL]:
    with ui_graphql_for(sample_run.instance) as graphql:
        yield graphql


def stale_assets(ui: UIGraphQL) -> set[str]:
    statuses = {
        "/".join(node["assetKey"]["path"]): node["staleStatus"] for node in ui(STALE_STATUS)["assetNodes"]
    }
    # The file assets have a version only once raw_files_sensor has reported one.
    assert set(statuses) == ALL | set(FILE_ASSETS)
    statuses = {name: status for name, status in statuses.items() if name in ALL}
    assert "MISSING" not in statuses.values()
    return {name for name, status in statuses.items() if status == "STALE"}


def reload(sample_run: FullRun, names=RAW_ORDERS_AND_READERS, defs: Definitions | None = None) -> None:
    defs = defs or sample_run.env.defs()
    result = defs.resolve_job_def("jaffle_shop_job").execute_in_process(
        instance=sample_run.instance, asset_selection=[AssetKey(name) for name in names]
    )
    assert result.success


def test_nothing_is_stale_after_a_full_run(sample_run, ui):
    assert sample_run.result.success
    assert stale_assets(ui) == set()


def test_a_changed_csv_reloaded_with_its_readers_leaves_only_the_chart_stale(sample_run, ui):
    orders = sample_run.env.data_dir / "raw_orders.csv"
    original = orders.read_bytes()
    try:
        orders.write_bytes(original.replace(b",returned", b",completed", 1))
        # Until raw_files_sensor reports the file's new version, Dagster cannot know it changed.
        assert stale_assets(ui) == set()
        reload(sample_run)
        assert stale_assets(ui) == {"order_count_chart"}
    finally:
        orders.write_bytes(original)
        reload(sample_run, PROJECT_ASSETS)
    assert stale_assets(ui) == set()


def test_a_changed_code_version_makes_the_asset_then_the_chart_stale(sample_run, ui, monkeypatch):
    # The UI of the changed code: a code server loading tests/changed_loader_definitions.py.
    with ui_graphql_for(sample_run.instance, "tests.changed_loader_definitions") as changed_ui:
        assert stale_assets(changed_ui) == {"raw_orders"}
        monkeypatch.setattr(ingest, "INGEST_CODE_VERSION", NEW_LOADER_VERSION)
        try:
            # Reloaded by the new code, with the models that read it: what reads them is stale.
            reload(sample_run, defs=with_rebuilt_raw_orders(sample_run.env.defs()))
            assert stale_assets(changed_ui) == {"order_count_chart"}
        finally:
            monkeypatch.undo()
            reload(sample_run, PROJECT_ASSETS)
    assert stale_assets(ui) == set()
