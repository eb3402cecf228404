"""The resources, chosen per environment (JAFFLE_ENV) from the settings.

Every value comes from ``Settings``, so assets never read the environment and tests pass
values instead of setting variables. The data folder and the prod database, when read from a
variable, are passed as ``EnvVar`` so the UI's resource view names the variable.
"""

from pathlib import Path

from dagster import EnvVar

from dagster_project.defs.ingest.data_source import LocalDataSource
from dagster_project.defs.report import ChartOutput
from dagster_project.defs.transform.assets import DbtCli
from dagster_project.defs.transform.project import build_project
from dagster_project.settings import DBT_CHILD_EXECUTABLE, REPO_ROOT, SPARK_TOKEN_VARIABLE, Settings
from dagster_project.warehouse import Warehouse
from dagster_project.warehouse.duckdb import DuckDBWarehouse


def warehouse(settings: Settings) -> Warehouse:
    """The warehouse role's engine for this environment, bound under the key ``duckdb``.

    The key is the tutorial's (``duckdb: DuckDBResource``), kept in every environment: the
    assets' parameter is named ``duckdb`` and typed as the role (``Warehouse``), so they run
    unchanged whichever engine is bound (see ``dagster_project/warehouse/__init__.py``).
    """
    if settings.warehouse_engine == "spark":
        # Imported here: the module is light, but the DuckDB environments have no use for it.
        from dagster_project.warehouse.spark import SparkWarehouse

        return SparkWarehouse(
            remote=settings.from_variable("SPARK_REMOTE", settings.spark_remote),
            # A secret: EnvVar, so its value is read when the run starts and never shown.
            token=EnvVar(SPARK_TOKEN_VARIABLE) if SPARK_TOKEN_VARIABLE in settings.variables_set else None,
            # One Spark warehouse per project folder: the lease sits where its DuckDB file would.
            lease_file=str(Path(settings.duckdb_database).with_name("spark.run-lease")),
        )
    if settings.environment == "prod":
        # MotherDuck: DuckDB reads MOTHERDUCK_TOKEN from the environment itself, so the token
        # never becomes a config value anyone could see.
        return DuckDBWarehouse(
            database=settings.from_variable("JAFFLE_PROD_DATABASE", settings.duckdb_database),
            memory_limit=settings.duckdb_memory_limit,
            # Not a local file, so the lease needs a place of its own: runs launched from this
            # checkout share it (runs from elsewhere are not kept apart, docs/scaling-out.md).
            lease_file=str(REPO_ROOT / "data" / "motherduck.run-lease"),
        )
    # dev and test: a local file. The path is passed resolved, not as EnvVar, because dbt runs
    # in jaffle_shop/ and a relative DUCKDB_DATABASE would name a different file there.
    return DuckDBWarehouse(database=settings.duckdb_database, memory_limit=settings.duckdb_memory_limit)


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "duckdb": warehouse(settings),
        # The project carries the target, the environment's name (one per environment in
        # profiles.yml); the resource takes it from there.
        "dbt": DbtCli(project_dir=build_project(settings), dbt_executable=DBT_CHILD_EXECUTABLE),
        "data_source": LocalDataSource(
            directory=settings.from_variable("JAFFLE_DATA_DIR", str(settings.data_dir))
        ),
        # The folder as the settings resolved it, not EnvVar: what a test passes is what is used.
        "report": ChartOutput(
            directory=str(settings.chart_dir),
            open_in_browser=settings.open_chart,
            has_display=settings.has_display,
        ),
    }
