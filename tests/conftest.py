"""Shared fixtures: every test gets its own DuckDB file, data folder and DAGSTER_HOME."""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from dagster import DagsterInstance, Definitions, ExecuteInProcessResult

from dagster_project.definitions import build_defs
from dagster_project.settings import INSTANCE_TEMPLATE, SAMPLE_DATA_DIR, Settings, load_settings
from dagster_project.warehouse import WarehouseResource


@dataclass
class ProjectEnv:
    """One isolated copy of the project's state, in a temporary folder."""

    root: Path
    data_dir: Path
    database: Path
    chart_dir: Path
    dagster_home: Path

    @property
    def variables(self) -> dict[str, str]:
        return {
            "JAFFLE_ENV": "test",
            "JAFFLE_DATA_DIR": str(self.data_dir),
            "DUCKDB_DATABASE": str(self.database),
            "JAFFLE_CHART_DIR": str(self.chart_dir),
            "JAFFLE_OPEN_CHART": "0",
            "DAGSTER_HOME": str(self.dagster_home),
        }

    @property
    def settings(self) -> Settings:
        return load_settings(self.variables)

    def defs(self) -> Definitions:
        return build_defs(self.settings)

    def warehouse(self) -> WarehouseResource:
        return WarehouseResource(database=str(self.database), lock_timeout=5)

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.dagster_home))

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.warehouse().get_connection(read_only=True) as conn:
            return conn.execute(sql, params or []).fetchall()

    def run_job(self, instance: DagsterInstance, **kwargs) -> ExecuteInProcessResult:
        job = self.defs().resolve_job_def("jaffle_shop_job")
        return job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def load_sample_tables(conn, data_dir: Path = SAMPLE_DATA_DIR) -> None:
    """Load and publish the three raw files, as a good run of the raw assets would leave them."""
    from dagster_project import publish
    from dagster_project.raw_load import RAW_TABLES, load_csv

    for table in RAW_TABLES:
        load_csv(conn, table, data_dir / table.file_name, allow_empty=False)
        publish.stage(conn, "tests", [publish.Built(table.name)])
    publish.publish(conn, "tests")


# dbt-labs' classic raw data, unchanged: whole-dollar amounts (the sample adds cents).
CLASSIC_DATA_DIR = Path(__file__).parent / "fixtures" / "classic"


def make_project_env(
    root: Path, monkeypatch: pytest.MonkeyPatch | None = None, data: Path = SAMPLE_DATA_DIR
) -> ProjectEnv:
    env = ProjectEnv(
        root=root,
        data_dir=root / "data",
        database=root / "warehouse" / "jaffle.duckdb",
        chart_dir=root / "charts",
        dagster_home=root / "dagster_home",
    )
    shutil.copytree(data, env.data_dir)
    env.dagster_home.mkdir()
    shutil.copy(INSTANCE_TEMPLATE, env.dagster_home / "dagster.yaml")
    if monkeypatch is not None:
        for name, value in env.variables.items():
            monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def project_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectEnv:
    return make_project_env(tmp_path, monkeypatch)


@pytest.fixture
def instance(project_env: ProjectEnv) -> Iterator[DagsterInstance]:
    with project_env.instance() as instance:
        yield instance


@dataclass
class FullRun:
    env: ProjectEnv
    instance: DagsterInstance
    result: ExecuteInProcessResult


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullRun]:
    """Materialize all once on the bundled sample data; the tests in a module only read it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_project_env(tmp_path_factory.mktemp("sample_run"), monkeypatch)
        with env.instance() as instance:
            yield FullRun(env, instance, env.run_job(instance))


@pytest.fixture(scope="module")
def classic_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullRun]:
    """Materialize all once on dbt-labs' classic data, to compare with the classic jaffle shop."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = make_project_env(tmp_path_factory.mktemp("classic_run"), monkeypatch, CLASSIC_DATA_DIR)
        with env.instance() as instance:
            yield FullRun(env, instance, env.run_job(instance))


class UIGraphQL:
    """Queries the webserver's GraphQL API (what the UI shows) for the project's code location."""

    repository: ClassVar[dict[str, str]] = {
        "repositoryLocationName": "jaffle_dagster",
        "repositoryName": "__repository__",
    }

    def __init__(self, context) -> None:
        self._context = context

    def __call__(self, query: str, **variables) -> dict:
        from dagster_graphql.test.utils import execute_dagster_graphql

        return execute_dagster_graphql(self._context, query, variables).data


@pytest.fixture
def ui_graphql(instance: DagsterInstance) -> Iterator[UIGraphQL]:
    # Dagster's own workspace classes, loading the code in this process: no code server.
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="dagster_project.definitions", attribute="defs"),
        location_name=UIGraphQL.repository["repositoryLocationName"],
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget([origin])) as workspace:
        yield UIGraphQL(workspace.create_request_context())


def materialize_raw(
    env: ProjectEnv,
    tables: list[str],
    *,
    duckdb: WarehouseResource | None = None,
    data_source=None,
    config: dict | None = None,
    instance: DagsterInstance | None = None,
    raise_on_error: bool = True,
):
    """Materialize the selected raw assets alone, as "Materialize selected" does in the UI."""
    from dagster import AssetKey, materialize

    from dagster_project.data_source import LocalDataSource
    from dagster_project.defs.ingest import raw_tables

    return materialize(
        [raw_tables],
        selection=[AssetKey(table) for table in tables],
        resources={
            "duckdb": duckdb or env.warehouse(),
            "data_source": data_source or LocalDataSource(directory=str(env.data_dir)),
        },
        run_config={"ops": {"raw_tables": {"config": config or {}}}},
        instance=instance,
        raise_on_error=raise_on_error,
    )
