"""The code loads, and the set-up left what loading needs."""

import os
import subprocess
import textwrap
from pathlib import Path

from dagster import AssetKey

from dagster_project.definitions import defs
from dagster_project.defs.transform.project import jaffle_shop_project
from dagster_project.settings import REPO_ROOT
from tests.helpers import FILE_ASSETS, PROJECT_ASSETS, VENV_BIN


def test_the_definitions_load_with_every_asset_and_resource():
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == set(PROJECT_ASSETS) | set(FILE_ASSETS)
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

from dagster_project.defs.ingest.assets import raw_tables
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


def code_references(asset: str) -> dict[str, int | None]:
    """The files (relative to the repo) and lines the UI links ``asset`` to."""
    metadata = defs.resolve_asset_graph().get(AssetKey(asset)).metadata
    return {
        str(Path(reference.file_path).relative_to(REPO_ROOT)): reference.line_number
        for reference in metadata["dagster/code_references"].code_references
    }


def test_each_asset_links_to_the_decorator_that_defines_it_and_each_model_to_its_sql():
    defined_by = {"raw_tables": "dagster_project/defs/ingest/assets.py"}
    defined_by |= {"jaffle_shop_dbt_assets": "dagster_project/defs/transform/assets.py"}
    defined_by |= {"order_count_chart": "dagster_project/defs/report.py"}
    for asset in PROJECT_ASSETS:
        references = code_references(asset)
        python = {path: line for path, line in references.items() if path.endswith(".py")}
        ((path, line),) = python.items()
        lines = (REPO_ROOT / path).read_text(encoding="utf-8").splitlines()
        # The link lands on the decorator; the function it decorates follows within a few lines.
        assert lines[line - 1].startswith("@"), (asset, path, lines[line - 1])
        defined = next(text for text in lines[line:] if text.startswith("def "))
        function = defined.removeprefix("def ").split("(")[0]
        assert defined_by[function] == path, (asset, function, path)
    assert code_references("customers")["jaffle_shop/models/marts/customers.sql"] is None
    assert "jaffle_shop/models/staging/stg_orders.sql" in code_references("stg_orders")
