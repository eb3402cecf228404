"""Stale or not, as the UI shows it: read from the instance's staleness API.

One full run for the module (``sample_run``); each test leaves the files as it found them.
Dagster marks an asset stale when one of its direct inputs has a new data or code version, so
a changed raw file makes its staging model stale; the marts follow once that model is rebuilt.
"""

from dagster import AssetKey, Definitions
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from dagster_project.defs import ingest

ALL = {
    "raw_customers",
    "raw_orders",
    "raw_payments",
    "stg_customers",
    "stg_orders",
    "stg_payments",
    "customers",
    "orders",
    "order_count_chart",
}
# raw_orders feeds only stg_orders.
CHILDREN_OF_RAW_ORDERS = {"stg_orders"}


def stale_assets(sample_run, defs: Definitions | None = None) -> set[str]:
    defs = defs or sample_run.env.defs()
    resolver = CachingStaleStatusResolver(
        sample_run.instance, defs.resolve_asset_graph(), LoadingContextForTest(sample_run.instance)
    )
    statuses = {name: resolver.get_status(AssetKey(name)) for name in ALL}
    assert StaleStatus.MISSING not in statuses.values()
    return {name for name, status in statuses.items() if status == StaleStatus.STALE}


def reload_raw_orders(sample_run, defs: Definitions | None = None) -> None:
    defs = defs or sample_run.env.defs()
    result = defs.resolve_job_def("jaffle_shop_job").execute_in_process(
        instance=sample_run.instance, asset_selection=[AssetKey("raw_orders")]
    )
    assert result.success


def test_nothing_is_stale_after_a_full_run(sample_run):
    assert sample_run.result.success
    assert stale_assets(sample_run) == set()


def test_a_changed_csv_makes_its_model_stale_until_it_is_changed_back(sample_run):
    orders = sample_run.env.data_dir / "raw_orders.csv"
    original = orders.read_bytes()
    try:
        orders.write_bytes(original.replace(b",returned", b",completed", 1))
        # Until the raw asset reloads, Dagster cannot know the file changed: the sensor's job.
        assert stale_assets(sample_run) == set()
        reload_raw_orders(sample_run)
        assert stale_assets(sample_run) == CHILDREN_OF_RAW_ORDERS
    finally:
        orders.write_bytes(original)
    # The same bytes give the same data version as the one downstream was built from.
    reload_raw_orders(sample_run)
    assert stale_assets(sample_run) == set()


def with_new_loader_version(sample_run, monkeypatch) -> Definitions:
    """The definitions after a developer changed the loader and bumped INGEST_CODE_VERSION."""
    monkeypatch.setattr(ingest, "INGEST_CODE_VERSION", "2")
    changed_raw_tables = ingest.raw_tables.map_asset_specs(
        lambda spec: spec.replace_attributes(code_version="2") if spec.key == AssetKey("raw_orders") else spec
    )
    defs = sample_run.env.defs()
    return Definitions(
        assets=[changed_raw_tables, *(a for a in defs.assets if a is not ingest.raw_tables)],
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
    )


def test_a_changed_code_version_makes_the_asset_then_its_model_stale(sample_run, monkeypatch):
    changed = with_new_loader_version(sample_run, monkeypatch)
    assert stale_assets(sample_run, changed) == {"raw_orders"}
    try:
        # Reloaded by the new code, the same file makes a new table: its model is now stale.
        reload_raw_orders(sample_run, changed)
        assert stale_assets(sample_run, changed) == CHILDREN_OF_RAW_ORDERS
    finally:
        monkeypatch.undo()
        reload_raw_orders(sample_run)
    assert stale_assets(sample_run) == set()
