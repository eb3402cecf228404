"""The code loads, and the set-up left what loading needs."""

import os
import subprocess
import textwrap

from dagster_project.dbt_project import jaffle_shop_project
from dagster_project.definitions import defs
from dagster_project.settings import REPO_ROOT
from tests.helpers import PROJECT_ASSETS, VENV_BIN


def test_the_definitions_load_with_every_asset_and_resource():
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == set(PROJECT_ASSETS)
    assert set(repository.get_top_level_resources()) >= {"duckdb", "dbt", "data_source"}
    job = defs.resolve_job_def("jaffle_shop_job")
    assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == set(PROJECT_ASSETS)


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


def dg_check_defs(project_dir, env) -> subprocess.CompletedProcess:
    """`dg check defs`, run in ``project_dir`` as a user would, with no flags."""
    return subprocess.run(
        [str(VENV_BIN / "dg"), "check", "defs"],
        cwd=project_dir,
        env={**os.environ, **env.variables, "PATH": os.pathsep.join([str(VENV_BIN), os.environ["PATH"]])},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dg_check_defs_passes_on_the_project(project_env):
    result = dg_check_defs(REPO_ROOT, project_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully." in result.stdout + result.stderr


UNBOUND_DATA_SOURCE = """
from dagster import Definitions

from dagster_project.defs.ingest import raw_tables
from dagster_project.warehouse.duckdb import DuckDBWarehouse

# The raw assets ask for `data_source`; this project binds only `duckdb`.
defs = Definitions(assets=[raw_tables], resources={{"duckdb": DuckDBWarehouse(database={database!r})}})
"""


def test_dg_check_defs_names_a_resource_key_that_no_resource_is_bound_to(project_env):
    project = project_env.root / "unbound"
    (project / "unbound").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
            [project]
            name = "unbound"
            version = "0"

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "unbound"
            code_location_target_module = "unbound.definitions"
        """)
    )
    (project / "unbound" / "__init__.py").write_text("")
    definitions = UNBOUND_DATA_SOURCE.format(database=str(project_env.database))
    (project / "unbound" / "definitions.py").write_text(definitions)

    result = dg_check_defs(project, project_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "resource with key 'data_source' required by op 'raw_tables' was not provided"
        in result.stdout + result.stderr
    )
