"""Environment → settings: the one module that reads ``os.environ``.

Every path is resolved to an absolute path here, because dbt runs inside ``jaffle_shop/``
while Dagster runs from the repo root: a relative DuckDB path would otherwise name two
different files.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dagster import EnvVar

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "jaffle_shop"
SAMPLE_DATA_DIR = REPO_ROOT / "data" / "sample"
# The instance settings `make` installs into the project's DAGSTER_HOME (tests copy it into theirs).
INSTANCE_TEMPLATE = REPO_ROOT / "deploy" / "dagster.yaml"
# The dbt beside this Python, so dbt works whether or not the venv is activated.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))

Environment = Literal["dev", "test", "prod"]
ENVIRONMENTS: tuple[Environment, ...] = ("dev", "test", "prod")

# prod runs on MotherDuck; the token is a secret, so it is only ever read from the environment
# (by DuckDB itself), never passed around as a value.
PROD_REQUIRED_VARIABLES = ("MOTHERDUCK_TOKEN", "JAFFLE_PROD_DATABASE")

# Every variable the project reads.
VARIABLES = (
    "JAFFLE_ENV",
    "DUCKDB_DATABASE",
    "JAFFLE_DATA_DIR",
    "JAFFLE_CHART_DIR",
    "JAFFLE_OPEN_CHART",
    *PROD_REQUIRED_VARIABLES,
)


class SettingsError(ValueError):
    """A setting in the environment is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    environment: Environment
    duckdb_database: str
    data_dir: Path
    chart_dir: Path
    open_chart: bool
    # A browser can be shown here; on a headless Linux box webbrowser.open may start a console
    # browser and block the run instead.
    has_display: bool = False
    # Which of our variables were set, so resources can name their source in the UI.
    variables_set: frozenset[str] = frozenset()

    def from_variable(self, name: str, value: str) -> str | EnvVar:
        """``EnvVar(name)`` when ``value`` came from that variable, else ``value`` itself.

        With an ``EnvVar`` the UI's resource view says where a value comes from, and a secret
        never appears in it. Dagster resolves it when the resource is built, from the
        environment of the process that runs the code: the one ``load_settings()`` reads.
        """
        return EnvVar(name) if name in self.variables_set else value

    @property
    def dbt_target(self) -> str:
        # The dbt targets in profiles.yml are named after the environments.
        return self.environment


def resolve_path(value: str) -> Path:
    """Relative paths are relative to the repo root, whatever the working directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def _environment(env: dict[str, str]) -> Environment:
    value = env.get("JAFFLE_ENV", "dev").strip().lower() or "dev"
    if value not in ENVIRONMENTS:
        raise SettingsError(
            f"JAFFLE_ENV={value!r} is not a known environment; use one of: {', '.join(ENVIRONMENTS)}."
        )
    return value  # type: ignore[return-value]


def _default_database(environment: Environment) -> str:
    if environment == "test":
        # A fixed name, not mkdtemp: the code server and the run worker are separate processes
        # and must agree on the file.
        return str(Path(tempfile.gettempdir()) / "jaffle-test" / "jaffle.duckdb")
    return str(REPO_ROOT / "data" / "jaffle.duckdb")


def _duckdb_database(environment: Environment, env: dict[str, str]) -> str:
    if environment == "prod":
        missing = [name for name in PROD_REQUIRED_VARIABLES if not env.get(name)]
        if missing:
            raise SettingsError(
                f"JAFFLE_ENV=prod needs {' and '.join(missing)}, not set in the environment. "
                "Set JAFFLE_PROD_DATABASE to the MotherDuck database (for example md:jaffle_shop) "
                "and MOTHERDUCK_TOKEN to a MotherDuck access token, or use JAFFLE_ENV=dev for "
                "the local DuckDB file."
            )
        database = env["JAFFLE_PROD_DATABASE"]
        if not database.startswith("md:"):
            raise SettingsError(
                f"JAFFLE_PROD_DATABASE={database!r} must name a MotherDuck database, like md:jaffle_shop."
            )
        return database
    value = env.get("DUCKDB_DATABASE") or _default_database(environment)
    return str(resolve_path(value))


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip()
    if not value:
        return default
    if value not in ("0", "1"):
        raise SettingsError(f"{name}={value!r} must be 0 or 1.")
    return value == "1"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    environment = _environment(env)
    return Settings(
        environment=environment,
        duckdb_database=_duckdb_database(environment, env),
        data_dir=resolve_path(env.get("JAFFLE_DATA_DIR") or str(SAMPLE_DATA_DIR)),
        chart_dir=resolve_path(env.get("JAFFLE_CHART_DIR") or "data/charts"),
        open_chart=_flag(env, "JAFFLE_OPEN_CHART", default=False),
        has_display=sys.platform in ("darwin", "win32")
        or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")),
        variables_set=frozenset(name for name in VARIABLES if env.get(name)),
    )
