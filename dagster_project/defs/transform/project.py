"""The dbt project: where it is, how it is parsed, and the vars every dbt command gets.

Kept apart from the asset definitions so that `make setup` can build the manifest without
importing ``@dbt_assets``, which needs the manifest to exist.
"""

import json
import os
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from dagster_project.settings import DBT_EXECUTABLE, DBT_PROJECT_DIR, REPO_ROOT, Settings, load_settings

# What dbt reads when it parses: the project's SQL and YAML, and the profile.
_PARSED_SUFFIXES = (".sql", ".yml", ".yaml")
_NOT_PARSED = ("target", "logs", "dbt_packages")


class SetupError(RuntimeError):
    """The project has not been set up: run `make setup` (or `make run`, `make test`)."""


def dbt_vars(database: str, memory_limit: str | None) -> list[str]:
    """The dbt vars that give dbt the same DuckDB database and memory limit as the Python assets."""
    limit = {"duckdb_memory_limit": memory_limit} if memory_limit else {}
    return ["--vars", json.dumps({"duckdb_database": database, **limit})]


def project_vars(settings: Settings) -> list[str]:
    """The vars runs pass in this environment (``Warehouse.dbt_vars``): none on Spark."""
    if settings.warehouse_engine != "duckdb":
        return []
    return dbt_vars(settings.duckdb_database, settings.duckdb_memory_limit)


def build_project(settings: Settings) -> DbtProject:
    """The dbt project for one environment; its target is the one the dbt resource runs with."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=REPO_ROOT,
        target=settings.dbt_target,
        # dbt re-parses the whole project when the profile or vars differ from the last parse
        # (the DuckDB memory limit is part of the profile's hash), so the manifest is prepared
        # with exactly the vars that runs pass.
        prepare_project_cli_args=["parse", "--quiet", *project_vars(settings)],
    )


def parsed_files(
    project_dir: Path = DBT_PROJECT_DIR, profiles: Path = REPO_ROOT / "profiles.yml"
) -> list[Path]:
    files = [
        path
        for path in project_dir.rglob("*")
        if path.suffix in _PARSED_SUFFIXES and not set(_NOT_PARSED) & set(path.relative_to(project_dir).parts)
    ]
    return [*files, profiles]


def manifest_is_stale(manifest: Path, files: list[Path]) -> bool:
    """Whether a file dbt parses changed after the manifest was written (or there is none)."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(path.stat().st_mtime > built for path in files)


def prepare(project: DbtProject) -> None:
    """``dbt parse`` with the venv's dbt, writing the manifest the asset definitions read."""
    # dagster-dbt's preparer runs the `dbt` it finds on PATH: make it the one beside this Python.
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(DBT_EXECUTABLE), os.environ.get("PATH", "")])
    project.preparer.prepare(project)


@cache
def jaffle_shop_project() -> DbtProject:
    """The project ``@dbt_assets`` reads its manifest from, when the asset module is imported.

    That import comes before ``build_defs(settings)`` runs, so this is the one place besides
    the entry points that reads the settings itself; it reads the same environment.
    """
    project = build_project(load_settings())
    # Parsed only when a dbt file changed since the manifest was built: a SQL edit shows up on
    # the next code reload under `make run`, while run workers, code servers and `dg` commands,
    # which all import this module, never pay for a parse (about 3 s). dagster-dbt's own
    # prepare_if_dev() parses whenever DAGSTER_IS_DEV_CLI is set, which every `dg` command and
    # every run worker under `dagster dev` inherit.
    if manifest_is_stale(project.manifest_path, parsed_files()):
        prepare(project)
    if not project.manifest_path.exists():
        raise SetupError(
            f"The dbt manifest {project.manifest_path} is missing. Run `make setup` "
            "(or `make run` / `make test`, which include it) to build it."
        )
    return project
