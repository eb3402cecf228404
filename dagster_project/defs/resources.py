"""The resources, chosen per environment (JAFFLE_ENV) from the settings."""


from dagster import EnvVar

from dagster_project.data_source import LocalDataSource
from dagster_project.defs.transform import DbtCli, jaffle_shop_project
from dagster_project.settings import DBT_EXECUTABLE, SAMPLE_DATA_DIR, Settings, from_environment
from dagster_project.warehouse import WarehouseResource


def warehouse(settings: Settings) -> WarehouseResource:
    if settings.environment == "prod":
        # The name comes from the environment; the MotherDuck token never leaves it.
        return WarehouseResource(database=EnvVar("JAFFLE_PROD_DATABASE"))
    # dev and test: a local file, resolved to an absolute path in settings (dbt gets the same).
    return WarehouseResource(database=settings.duckdb_database)


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "duckdb": warehouse(settings),
        "dbt": DbtCli(
            project_dir=jaffle_shop_project(),
            target=settings.dbt_target,
            dbt_executable=DBT_EXECUTABLE,
        ),
        "data_source": LocalDataSource(
            directory=from_environment("JAFFLE_DATA_DIR", str(SAMPLE_DATA_DIR))
        ),
    }
