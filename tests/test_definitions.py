"""The code loads, and the set-up left what loading needs."""

from dagster_project.dbt_project import jaffle_shop_project
from dagster_project.definitions import defs


def test_the_definitions_load_with_every_asset_and_resource():
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
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
    assert set(repository.get_top_level_resources()) >= {"duckdb", "dbt", "data_source"}
    assert defs.resolve_job_def("jaffle_shop_job") is not None


def test_the_dbt_manifest_exists_after_set_up():
    assert jaffle_shop_project().manifest_path.is_file()


def test_sources_map_to_the_raw_python_assets():
    graph = defs.resolve_asset_graph()
    parents = {
        key.to_user_string()
        for key in graph.get(
            next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "stg_orders")
        ).parent_keys
    }
    assert parents == {"raw_orders"}


def test_the_chart_depends_on_the_customers_model():
    graph = defs.resolve_asset_graph()
    chart = next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "order_count_chart")
    assert {key.to_user_string() for key in graph.get(chart).parent_keys} == {"customers"}
