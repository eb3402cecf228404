"""Shared fixtures: every test gets its own DuckDB file, data folder and DAGSTER_HOME.

The helpers they are built from live in ``tests/helpers.py``.
"""

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance
from xdist.scheduler import LoadScopeScheduling

from dagster_project.serve.spark_connect import SparkConnectServer, SparkServerError, running_server
from tests.helpers import (
    CLASSIC_DATA_DIR,
    FullRun,
    ProjectEnv,
    UIGraphQL,
    make_project_env,
    ui_graphql_for,
)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Each test starts with SIGTERM's default action, before any of its fixtures.

    A Dagster run in this process gives SIGTERM whatever SIGINT has
    (``dagster._utils.interrupts``), for good. Where SIGINT is ignored (``make test &`` from a
    script, ``nohup``), SIGTERM is then ignored too, and so is it by every process a later test
    starts: a stand-in server never stops, and a JVM, which installs no shutdown handler for an
    ignored signal, never writes its class archive.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def project_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectEnv:
    return make_project_env(tmp_path, monkeypatch)


@pytest.fixture
def instance(project_env: ProjectEnv) -> Iterator[DagsterInstance]:
    with project_env.instance() as instance:
        yield instance


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


@pytest.fixture
def ui_graphql(instance: DagsterInstance) -> Iterator[UIGraphQL]:
    """What the UI reads, for this test's instance and environment."""
    with ui_graphql_for(instance) as graphql:
        yield graphql


@pytest.fixture(scope="session")
def spark_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkConnectServer]:
    """One Spark Connect server for the whole session, with its tables and Derby metastore in a
    temporary folder, on a free port of 127.0.0.1. A start costs 8 to 20 s here once the venv
    holds Spark's class archive; the first start after an install records it first (1 to 3 min)."""
    try:
        with running_server(tmp_path_factory.mktemp("spark")) as server:
            yield server
    except SparkServerError as error:
        # Never a skip: a machine without Java or pyspark must say what to install.
        pytest.fail(f"The Spark tests need a Spark Connect server: {error}", pytrace=False)


@pytest.fixture(scope="session")
def spark_connect(spark_server: SparkConnectServer) -> str:
    """The session's Spark Connect URL, `sc://127.0.0.1:PORT`, as SPARK_REMOTE holds it."""
    return spark_server.url


# The modules that take longest after the Spark ones (which run together, ``ModuleScheduling``),
# started first so that no worker is left with one of them at the end while the other idles.
LONGEST_MODULES = (
    "tests.test_serve",
    "tests.test_bad_data",
    "tests.test_concurrency",
    "tests.test_concurrency_postgres",
)


def _is_spark_module(module_path: str) -> bool:
    return "spark" in Path(module_path).name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first, the Spark modules ahead of them, the rest in random order.

    pytest-randomly (a wrapper around this hook) has shuffled the items already; the sort is
    stable, so the rest keep its order. ``make test``'s workers take modules in this order
    (``--no-loadscope-reorder``: pytest-xdist would otherwise order them by their number of tests).
    """
    items.sort(
        key=lambda item: (
            not _is_spark_module(str(item.path)),
            item.module.__name__ not in LONGEST_MODULES,
        )
    )


class ModuleScheduling(LoadScopeScheduling):
    """``--dist loadfile``: each module goes whole to one worker, so its shared set-up (a
    deployment, a good run) starts once; except that every module whose name says ``spark`` goes
    to the same worker. They share the session's Spark server (``spark_server``), and each worker
    is a session of its own: two workers would start two JVMs, a minute or more each on 2 cores.
    """

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return "spark" if _is_spark_module(module) else module


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling | None:
    return ModuleScheduling(config, log) if config.getvalue("dist") == "loadfile" else None
