"""The dbt project: where it is, how it is parsed, and the vars every dbt command gets.

Kept apart from the asset definitions so that `make setup` can build the manifest without
importing ``@dbt_assets``, which needs the manifest to exist.
"""

import json
from functools import cache

from dagster_dbt import DbtProject

from dagster_project.settings import DBT_PROJECT_DIR, REPO_ROOT, Settings, load_settings


class SetupError(RuntimeError):
    """The project has not been set up: run `make setup` (or `make run`, `make test`)."""


def dbt_vars(database: str) -> list[str]:
    """The dbt var that points dbt at the same DuckDB database as the Python assets."""
    return ["--vars", json.dumps({"duckdb_database": database})]


def build_project(settings: Settings) -> DbtProject:
    """The dbt project for one environment; its target is the one the dbt resource runs with."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=REPO_ROOT,
        target=settings.dbt_target,
        # dbt re-parses the whole project when the profile or vars differ from the last parse,
        # so the manifest is prepared with exactly the vars that runs pass.
        prepare_project_cli_args=["parse", "--quiet", *dbt_vars(settings.duckdb_database)],
    )


@cache
def jaffle_shop_project() -> DbtProject:
    """The project ``@dbt_assets`` reads its manifest from, when the asset module is imported.

    That import comes before ``build_defs(settings)`` runs, so this is the one place besides
    the entry points that reads the settings itself; it reads the same environment.
    """
    project = build_project(load_settings())
    # Under `dagster dev` the manifest is re-parsed on each code reload so SQL edits show up;
    # everywhere else `make setup` built it, and importing this module must not run `dbt parse`.
    project.prepare_if_dev()
    if not project.manifest_path.exists():
        raise SetupError(
            f"The dbt manifest {project.manifest_path} is missing. Run `make setup` "
            "(or `make run` / `make test`, which include it) to build it."
        )
    return project
