"""What is measured: the project's headless commands, the bare engines, and code loading.

Every run gets a fresh DuckDB file and DAGSTER_HOME in its own temporary folder, so no run
finds work a previous one left behind. On Spark, every run shares the benchmark's one Spark
Connect server, whose databases are emptied before each run (not timed), for the same reason:
a run with a fresh DAGSTER_HOME would otherwise find a previous run's versions, which it can
neither use nor collect (it does not know their run), and both sides would replace what the
other side's runs left.
"""

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Measurement, measure
from dagster_project.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent

# Loading the code as a code server does: every asset, job, schedule, sensor and resource.
LOAD_DEFINITIONS = (
    "import dagster, dagster_project.definitions as d; dagster.Definitions.validate_loadable(d.defs)"
)
# The floor under that: the libraries alone.
IMPORT_LIBRARIES = "import dagster, dagster_dbt, dagster_duckdb"


# The command the README gives, with the venv's dagster whether or not the venv is activated.
README_COMMAND = [
    str(Path(sys.executable).with_name("dagster")),
    *("asset", "materialize", "--select", "*", "-m", "dagster_project.definitions"),
]
# `make materialize`.
MAKE_MATERIALIZE = [sys.executable, "-m", "dagster_project.cli.materialize"]


@dataclass(frozen=True)
class Engine:
    """The warehouse the runs use: DuckDB (a file per run), or Spark through a Connect server."""

    name: str = "duckdb"
    spark_remote: str | None = None

    def empty(self) -> None:
        """Drop every database either side's runs write on Spark; nothing to do on DuckDB."""
        if self.name != "spark":
            return
        from pyspark.sql import SparkSession

        from bench.bare_spark import BARE_SCHEMA
        from dagster_project.warehouse import BUILD_SCHEMA
        from dagster_project.warehouse.spark import PUBLISHED_SCHEMA

        session = SparkSession.builder.remote(str(self.spark_remote)).create()
        try:
            for database in (PUBLISHED_SCHEMA, BUILD_SCHEMA, BARE_SCHEMA):
                session.sql(f"drop database if exists {database} cascade").collect()
        finally:
            session.stop()

    @property
    def variables(self) -> dict[str, str]:
        if self.name == "spark":
            return {"JAFFLE_ENV": "spark", "SPARK_REMOTE": str(self.spark_remote)}
        # dev is the environment with a local DuckDB file, whatever JAFFLE_ENV the caller has set.
        return {"JAFFLE_ENV": "dev"}


DUCKDB = Engine()


def materialize(
    data_dir: Path, log: Path, command: list[str] = README_COMMAND, engine: Engine = DUCKDB
) -> tuple[Measurement, int]:
    """A headless run of every asset with `command`; also the chart's bytes."""
    with tempfile.TemporaryDirectory(prefix="jaffle-bench-") as work:
        work = Path(work)
        dagster_home = work / "dagster_home"
        dagster_home.mkdir()
        # The instance settings `make` installs, so the run pays for what a user's run pays for.
        shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        chart_dir = work / "charts"
        env = project_env(
            JAFFLE_DATA_DIR=str(data_dir.resolve()),
            DUCKDB_DATABASE=str(work / "jaffle.duckdb"),
            DAGSTER_HOME=str(dagster_home),
            JAFFLE_OPEN_CHART="0",
            JAFFLE_CHART_DIR=str(chart_dir),
            **engine.variables,
        )
        engine.empty()
        measured = measure(command, env, REPO_ROOT, log)
        chart_bytes = sum(path.stat().st_size for path in chart_dir.rglob("*") if path.is_file())
    return measured, chart_bytes


def bare(data_dir: Path, log: Path, engine: Engine = DUCKDB) -> Measurement:
    """The engine's own CSV reader then `dbt build`, with no Dagster anywhere."""
    with tempfile.TemporaryDirectory(prefix="jaffle-bench-") as work:
        work = Path(work)
        data = ("--data", str(data_dir.resolve()))
        dbt_target = ("--dbt-target-path", str(work / "dbt"))
        if engine.name == "spark":
            command = [sys.executable, "-m", "bench.bare_spark", *data, "--remote", str(engine.spark_remote)]
        else:
            command = [
                *(sys.executable, "-m", "bench.bare", *data, "--database", str(work / "jaffle.duckdb")),
                *("--memory-limit", memory_limit()),
            ]
        engine.empty()
        return measure([*command, *dbt_target], project_env(**engine.variables), REPO_ROOT, log)


def python_seconds(code: str, log: Path, engine: Engine = DUCKDB) -> float:
    """Wall time of a fresh Python running `code`."""
    with tempfile.TemporaryDirectory(prefix="jaffle-bench-") as dagster_home:
        env = project_env(DAGSTER_HOME=dagster_home, **engine.variables)
        return measure([sys.executable, "-c", code], env, REPO_ROOT, log).wall_s


def memory_limit() -> str:
    """The DuckDB memory limit the project's runs get here: DUCKDB_MEMORY_LIMIT or the default."""
    return load_settings(project_env()).duckdb_memory_limit


def project_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, **DUCKDB.variables, **overrides}
