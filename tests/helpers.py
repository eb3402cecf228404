"""What tests share besides fixtures: an isolated copy of the project, and the UI's GraphQL API."""

import atexit
import csv
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
)

from dagster_project.definitions import build_defs
from dagster_project.defs.ingest.data_source import LocalDataSource
from dagster_project.settings import INSTANCE_TEMPLATE, REPO_ROOT, SAMPLE_DATA_DIR, Settings, load_settings
from dagster_project.warehouse.duckdb import DuckDBWarehouse

# Every asset of the project, as the UI names them.
PROJECT_ASSETS = (
    "raw_customers",
    "raw_orders",
    "raw_payments",
    "stg_customers",
    "stg_orders",
    "stg_payments",
    "customers",
    "orders",
    "order_count_chart",
)
# The raw files, assets that Dagster does not compute: raw_files_sensor reports their versions.
FILE_ASSETS = ("raw_customers_file", "raw_orders_file", "raw_payments_file")

# The executables of the venv running the tests, whatever it is called and wherever it is.
VENV_BIN = Path(sys.executable).parent
# What `make` takes as up to date in the tests that run it: building the venv or the dbt manifest
# is `make setup`'s business (tests/test_make_setup.py), and `make test` has just done both.
MAKE_UP_TO_DATE = ("-o", ".venv/.synced", "-o", "jaffle_shop/target/manifest.json")


def shell_environment(variables: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a new terminal, plus ``variables``: no venv activated, no make of ours.

    `make test` runs pytest with the venv first on PATH and make's own variables set; a user
    typing a command has neither.
    """
    ours = ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "DAGSTER_HOME")
    env = {name: value for name, value in os.environ.items() if name not in ours}
    env["PATH"] = os.pathsep.join(
        folder for folder in env.get("PATH", "").split(os.pathsep) if Path(folder) != VENV_BIN
    )
    return {**env, **(variables or {})}


def run_make(
    *arguments: str, env: dict[str, str], cwd: Path = REPO_ROOT, timeout: float = 300, stdin: str = ""
) -> subprocess.CompletedProcess:
    """`make ARGUMENTS` as typed in a terminal at ``cwd``, with ``env`` as its environment."""
    return subprocess.run(
        ["make", "--no-print-directory", *MAKE_UP_TO_DATE, *arguments],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class ProjectEnv:
    """One isolated copy of the project's state, in a temporary folder."""

    root: Path
    data_dir: Path
    database: Path
    chart_dir: Path
    dagster_home: Path

    @classmethod
    def under(cls, root: Path) -> "ProjectEnv":
        """The project's state laid out under ``root``."""
        return cls(
            root=root,
            data_dir=root / "data",
            database=root / "warehouse" / "jaffle.duckdb",
            chart_dir=root / "charts",
            dagster_home=root / "dagster_home",
        )

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

    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(database=str(self.database), lock_timeout=5)

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.dagster_home))

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.warehouse().get_connection(read_only=True) as conn:
            return conn.execute(sql, params or []).fetchall()

    def published_tables(self) -> dict[str, list[tuple]]:
        """Every table and view users read (the `main` schema), with all its rows."""
        if not self.database.exists():
            return {}
        names = self.query(
            "select table_name from information_schema.tables where table_schema = 'main' order by 1"
        )
        return {name: sorted(self.query(f'select * from main."{name}"'), key=repr) for (name,) in names}

    def run_job(self, instance: DagsterInstance, **kwargs) -> ExecuteInProcessResult:
        job = self.defs().resolve_job_def("jaffle_shop_job")
        return job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)


# dbt-labs' classic raw data, unchanged: whole-dollar amounts (the sample adds cents).
CLASSIC_DATA_DIR = Path(__file__).parent / "fixtures" / "classic"


def copy_tracked_files(root: Path) -> None:
    """Copy the files git tracks under ``root``, as a fresh clone has them."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (REPO_ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, root / name)


def replace_file(path: Path, data: str | bytes) -> None:
    """Give ``path`` new contents. The sample files are copied read-only: replace, not overwrite."""
    path.unlink()
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")


def split_by_day(data_dir: Path) -> dict[str, list[str]]:
    """Replace raw_orders.csv and raw_payments.csv in ``data_dir`` with one file per day of
    each, as `make data DAILY=1` lays them out: an order in the file of its order_date, a
    payment in its order's. The day files written, by folder."""
    with (data_dir / "raw_orders.csv").open(newline="", encoding="utf-8") as file:
        orders = list(csv.reader(file))
    with (data_dir / "raw_payments.csv").open(newline="", encoding="utf-8") as file:
        payments = list(csv.reader(file))
    day_of_order = {row[0]: row[2] for row in orders[1:]}
    by_day: dict[tuple[str, str], list[list[str]]] = {}
    for row in orders[1:]:
        by_day.setdefault(("raw_orders", row[2]), []).append(row)
    for row in payments[1:]:
        by_day.setdefault(("raw_payments", day_of_order[row[1]]), []).append(row)
    headers = {"raw_orders": orders[0], "raw_payments": payments[0]}
    for (folder, day), rows in sorted(by_day.items()):
        (data_dir / folder).mkdir(exist_ok=True)
        with (data_dir / folder / f"{day}.csv").open("w", newline="", encoding="utf-8") as file:
            csv.writer(file, lineterminator="\n").writerows([headers[folder], *rows])
    (data_dir / "raw_orders.csv").unlink()
    (data_dir / "raw_payments.csv").unlink()
    return {
        folder: sorted(f"{folder}/{day}.csv" for name, day in by_day if name == folder) for folder in headers
    }


def reorder_columns(path: Path) -> None:
    """The file (of values without commas) with its columns in reverse order and one more, as
    another export might write one day: its reader is one of its own."""
    rows = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]
    replace_file(path, "".join(",".join([*reversed(row), "note"]) + "\n" for row in rows))


def load_sample_tables(conn, data_dir: Path = SAMPLE_DATA_DIR) -> None:
    """Load and publish the three raw files, as a good run of the raw assets would leave them."""
    from dagster_project.defs.ingest.assets import raw_entry
    from dagster_project.defs.ingest.tables import RAW_TABLES
    from dagster_project.warehouse import publish, version_name
    from dagster_project.warehouse.duckdb import DuckDBSession

    session = DuckDBSession(conn)
    run_id = str(uuid.uuid4())
    source = LocalDataSource(directory=str(data_dir))
    entries = {}
    for table in RAW_TABLES:
        path = data_dir / table.file_name
        session.load_csv(table, [path], allow_empty=False, into=version_name(table.name, run_id))
        entries[table.name] = raw_entry(
            table.name, version_name(table.name, run_id), path, source.fingerprint(table.file_name)
        )
    publish.publish(session, run_id, entries, lambda _: None)


def materialize_raw(
    env: "ProjectEnv",
    tables: list[str],
    *,
    duckdb: DuckDBWarehouse | None = None,
    data_source=None,
    config: dict | None = None,
    instance: DagsterInstance | None = None,
    raise_on_error: bool = True,
):
    """Materialize the selected raw assets alone, as "Materialize selected" does in the UI."""
    from dagster import AssetKey, materialize

    from dagster_project.defs.ingest.assets import raw_tables

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


# Instance settings a user might write to protect DuckDB with Dagster's pools. The project's ops
# declare no pool, so none of them can hold a step or a queued run back while another run holds
# the run lease (the deadlock that pools and a lease made together). test_concurrency.py (SQLite
# storage) and test_concurrency_postgres.py (PostgreSQL storage) run each of them.
INSTANCE_POOLS = {
    "no pools": "",
    "op granularity, limit 1": "concurrency:\n  pools:\n    granularity: op\n    default_limit: 1\n",
    "run granularity, limit 1": "concurrency:\n  pools:\n    granularity: run\n    default_limit: 1\n",
}


def add_instance_settings(dagster_home: Path, settings: str) -> None:
    """Append ``settings`` to the instance's dagster.yaml, as a user editing it would."""
    path = dagster_home / "dagster.yaml"
    path.write_text(path.read_text(encoding="utf-8") + settings, encoding="utf-8")


@functools.cache
def empty_instance_home() -> Path:
    """A DAGSTER_HOME with the instance template and the empty SQLite storage it makes, created
    once per test process and copied into each project's home.

    Creating that storage (its tables and migrations) takes 1.2 to 1.5 s of CPU; a copy of the
    same files takes milliseconds, and an instance opened on them is the one a first start makes.
    """
    home = Path(tempfile.mkdtemp(prefix="jaffle-instance-")) / "dagster_home"
    home.mkdir()
    atexit.register(shutil.rmtree, home.parent, ignore_errors=True)
    shutil.copy(INSTANCE_TEMPLATE, home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)):
        pass
    return home


def make_project_env(
    root: Path, monkeypatch: pytest.MonkeyPatch | None = None, data: Path = SAMPLE_DATA_DIR
) -> ProjectEnv:
    """A copy of the sample data, a DuckDB path and a DAGSTER_HOME under ``root``.

    With ``monkeypatch``, the process environment points at them too, for code that reads it
    (Dagster's own ``DagsterInstance.get()``, subprocesses, code servers).
    """
    env = ProjectEnv.under(root)
    shutil.copytree(data, env.data_dir)
    shutil.copytree(empty_instance_home(), env.dagster_home)
    if monkeypatch is not None:
        for name, value in env.variables.items():
            monkeypatch.setenv(name, value)
    return env


@dataclass(frozen=True)
class ProjectTemplate:
    """A project's files after a costly set-up made once (``files``), and where each test's
    fresh copy of them goes (``place``, where the set-up ran).

    The copies go to the one place, one test after another: the same database path gives dbt
    the same vars and profile, so a copy's runs reuse the set-up's parse of the dbt project
    (kept beside the database) instead of parsing it again, 2 to 3 s of CPU each.
    """

    files: Path
    place: Path

    @classmethod
    def set_aside(cls, env: ProjectEnv) -> "ProjectTemplate":
        """Move ``env``'s files aside as the template of the copies that take their place."""
        return cls(files=env.root.rename(env.root.with_name(f"{env.root.name}-template")), place=env.root)

    def fresh_copy(self, monkeypatch: pytest.MonkeyPatch) -> ProjectEnv:
        """A copy of the template in place of the last test's (data, DuckDB file, DAGSTER_HOME,
        chart, dbt's target folder), with the process environment pointing at it."""
        shutil.rmtree(self.place, ignore_errors=True)
        shutil.copytree(self.files, self.place)
        env = ProjectEnv.under(self.place)
        for name, value in env.variables.items():
            monkeypatch.setenv(name, value)
        return env


@dataclass
class FullRun:
    env: ProjectEnv
    instance: DagsterInstance
    result: ExecuteInProcessResult


class UIGraphQL:
    """Queries the webserver's GraphQL API (what the UI shows) for the project's code location."""

    repository: ClassVar[dict[str, str]] = {
        "repositoryLocationName": "jaffle_dagster",
        "repositoryName": "__repository__",
    }

    def __init__(self, workspace) -> None:
        self._workspace = workspace

    @property
    def workspace(self):
        """The workspace's process context: what the daemon launches a queued run with."""
        return self._workspace

    def __call__(self, query: str, **variables) -> dict:
        from dagster_graphql.test.utils import execute_dagster_graphql

        # A request context per query, as the webserver makes one per request: it caches what
        # it reads from the instance (staleness, for one), so a reused one would show old state.
        context = self._workspace.create_request_context()
        result = execute_dagster_graphql(context, query, variables)
        assert not result.errors, result.errors
        return result.data


@contextmanager
def ui_graphql_for(
    instance: DagsterInstance,
    module: str = "dagster_project.definitions",
    working_directory: Path = REPO_ROOT,
) -> Iterator[UIGraphQL]:
    """The GraphQL API over ``instance``, with ``module``'s ``defs`` (found from
    ``working_directory``) in a code server of its own.

    The code server is a subprocess, as under `dagster dev`: it inherits this process's
    environment when it starts, so set the project's variables first. Starting it takes a few
    seconds.
    """
    from dagster_graphql.test.utils import define_out_of_process_workspace

    location = {
        "module_name": module,
        "attribute": "defs",
        "location_name": UIGraphQL.repository["repositoryLocationName"],
        "working_directory": str(working_directory),
        "executable_path": sys.executable,
    }
    with tempfile.TemporaryDirectory(prefix="workspace-") as folder:
        workspace = Path(folder) / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
        with define_out_of_process_workspace(str(workspace), None, instance) as process_context:
            yield UIGraphQL(process_context)


# The assets that are tables in `main`, so that the catalog records their row counts.
TABLE_ASSETS = ("raw_customers", "raw_orders", "raw_payments", "customers", "orders")


def assert_catalog_matches_warehouse(env: ProjectEnv, instance: DagsterInstance) -> None:
    """The latest materialization of every table asset reports the published table's row count."""
    for name in TABLE_ASSETS:
        event = instance.get_latest_materialization_event(AssetKey(name))
        recorded = event.asset_materialization.metadata["dagster/row_count"].value
        (rows,) = env.query(f"select count(*) from main.{name}")[0]
        assert recorded == rows, f"the catalog says {name} has {recorded} rows; main.{name} has {rows}"


def dbt_reparsed(env: ProjectEnv) -> list[bool]:
    """For each dbt invocation on ``env``'s warehouse, in order: whether dbt parsed the whole
    project again (True) or reused its partial parse of the run before (False).

    Read from the JSON log dbt keeps in the warehouse's dbt target folder.
    """
    log = env.database.with_name(f"{env.database.name}.dbt-target") / "dbt.log"
    reparsed: dict[str, bool] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        info = json.loads(line)["info"]
        invocation = reparsed.setdefault(info["invocation_id"], False)
        # I024: "Unable to do partial parsing because …"
        reparsed[info["invocation_id"]] = invocation or info["code"] == "I024"
    return list(reparsed.values())


# What the published marts must agree on, with each other and with the raw tables they read, each
# as (what, SQL for one side, SQL for the other). Money is compared in cents: the raw payments
# hold cents, the marts dollars.
PUBLISHED_AGREEMENTS = (
    (
        "orders has one row per raw order",
        "select count(*) from main.orders",
        "select count(*) from main.raw_orders",
    ),
    (
        "customers has one row per raw customer",
        "select count(*) from main.customers",
        "select count(*) from main.raw_customers",
    ),
    (
        "the customers' numbers of orders add up to the orders",
        "select sum(number_of_orders) from main.customers",
        "select count(*) from main.orders",
    ),
    (
        "the customers' lifetime values add up to the orders' amounts",
        "select sum(customer_lifetime_value) * 100 from main.customers",
        "select sum(amount) * 100 from main.orders",
    ),
    (
        "the orders' amounts add up to the raw payments",
        "select sum(amount) * 100 from main.orders",
        "select sum(amount) from main.raw_payments",
    ),
)


def assert_published_consistent(env: ProjectEnv) -> None:
    """The published marts agree with each other and with the published raw tables."""

    def value(sql: str):
        ((result,),) = env.query(sql)
        return result

    disagreements = [
        f"{what}: {value(left)} against {value(right)}"
        for what, left, right in PUBLISHED_AGREEMENTS
        if value(left) != value(right)
    ]
    assert disagreements == [], "the published tables disagree:\n" + "\n".join(disagreements)


def assert_nothing_pending(env: ProjectEnv) -> None:
    """No run left a pending record behind in the warehouse's state."""
    assert env.query("select run_id, name from jaffle_build.wap_state where not published") == []
