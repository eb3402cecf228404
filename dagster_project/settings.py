"""Environment → settings: the one module that reads ``os.environ``.

Every path is resolved to an absolute path here, because dbt runs inside ``jaffle_shop/``
while Dagster runs from the repo root: a relative DuckDB path would otherwise name two
different files.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

from dagster_project.spark_url import SparkUrlError, TokenInUrlError, check_remote

# Importing dagster takes 3.5 s here: `make spark` and `make stop` read these settings without it.
if TYPE_CHECKING:
    from dagster import EnvVar

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "jaffle_shop"
SAMPLE_DATA_DIR = REPO_ROOT / "data" / "sample"
# The instance settings `make` installs into the project's DAGSTER_HOME (tests copy it into theirs).
INSTANCE_TEMPLATE = REPO_ROOT / "deploy" / "dagster.yaml"
# `make serve`'s instance settings and code location (dagster_project/serve): used as they are by
# every deployment of the production shape; only the environment differs (docs/deploying.md).
PRODUCTION_DIR = REPO_ROOT / "deploy" / "production"
# The dbt beside this Python, so dbt works whether or not the venv is activated.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
# What runs start instead: the same dbt, killed when the run worker dies (dagster_project/defs/transform/dbt_child.py).
DBT_CHILD_EXECUTABLE = str(Path(sys.executable).with_name("jaffle-dbt"))

Environment = Literal["dev", "test", "prod", "spark"]
ENVIRONMENTS: tuple[Environment, ...] = ("dev", "test", "prod", "spark")

# prod runs on MotherDuck; the token is a secret, so it is only ever read from the environment
# (by DuckDB itself), never passed around as a value.
PROD_REQUIRED_VARIABLES = ("MOTHERDUCK_TOKEN", "JAFFLE_PROD_DATABASE")

# spark runs on a Spark Connect server: by default the local one `make spark` starts. A remote
# cluster (Databricks, for one) takes a token, a secret read from the environment only.
DEFAULT_SPARK_REMOTE = "sc://127.0.0.1:15002"
SPARK_TOKEN_VARIABLE = "SPARK_CONNECT_TOKEN"

# Every variable the project reads.
VARIABLES = (
    "JAFFLE_ENV",
    "DUCKDB_DATABASE",
    "JAFFLE_DATA_DIR",
    "JAFFLE_CHART_DIR",
    "JAFFLE_OPEN_CHART",
    "JAFFLE_WARM_WORKER",
    "DUCKDB_MEMORY_LIMIT",
    *PROD_REQUIRED_VARIABLES,
    "SPARK_REMOTE",
    SPARK_TOKEN_VARIABLE,
)

# The share of the machine's memory DuckDB may use when DUCKDB_MEMORY_LIMIT is not set. DuckDB's
# own default is 80%, which let 100 million customers peak at 13 GiB; at a quarter it spills
# to disk instead (docs/benchmarks.md), and leaves a laptop the rest.
DEFAULT_MEMORY_SHARE = 0.25
# The sizes DuckDB's memory_limit accepts; it refuses percentages ("Unknown unit for memory").
_MEMORY_SIZE = re.compile(r"(?P<number>\d+(\.\d+)?)\s*(?P<unit>[KMGT]i?B)", re.IGNORECASE)


class SettingsError(ValueError):
    """A setting in the environment is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    environment: Environment
    duckdb_database: str
    # DuckDB's memory_limit, for the Python assets and for dbt alike: a size such as 6GiB.
    duckdb_memory_limit: str
    data_dir: Path
    chart_dir: Path
    open_chart: bool
    # A browser can be shown here; on a headless Linux box webbrowser.open may start a console
    # browser and block the run instead.
    has_display: bool = False
    # Which of our variables were set, so resources can name their source in the UI.
    variables_set: frozenset[str] = frozenset()
    # JAFFLE_ENV=spark: the Spark Connect URL, without the token (SPARK_CONNECT_TOKEN).
    spark_remote: str = DEFAULT_SPARK_REMOTE
    # A code server forks its runs from a process with the libraries imported
    # (dagster_project/instance/warm_worker.py); JAFFLE_WARM_WORKER=0 spawns each run afresh.
    warm_worker: bool = True

    @property
    def warehouse_engine(self) -> Literal["duckdb", "spark"]:
        return "spark" if self.environment == "spark" else "duckdb"

    def from_variable(self, name: str, value: str) -> str | EnvVar:
        """``EnvVar(name)`` when ``value`` came from that variable, else ``value`` itself.

        With an ``EnvVar`` the UI's resource view says where a value comes from, and a secret
        never appears in it. Dagster resolves it when the resource is built, from the
        environment of the process that runs the code: the one ``load_settings()`` reads.
        """
        from dagster import EnvVar

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


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_memory_limit(total_bytes: int) -> str:
    return f"{int(total_bytes * DEFAULT_MEMORY_SHARE) // 2**20}MiB"


def _memory_limit(env: dict[str, str]) -> str:
    value = env.get("DUCKDB_MEMORY_LIMIT", "").strip()
    if not value:
        return default_memory_limit(machine_memory_bytes())
    match = _MEMORY_SIZE.fullmatch(value)
    if not match or float(match["number"]) == 0:
        raise SettingsError(
            f"DUCKDB_MEMORY_LIMIT={value!r} is not a size DuckDB accepts: give a number and a unit, "
            "like 4GB or 512MiB (DuckDB takes no percentages), or unset it for a quarter of this "
            "machine's memory."
        )
    return f"{match['number']}{match['unit']}"


def _spark_remote(env: dict[str, str]) -> str:
    value = env.get("SPARK_REMOTE", "").strip() or DEFAULT_SPARK_REMOTE
    try:
        return check_remote(value)
    except TokenInUrlError as error:
        # The URL is shown in the UI and the run log; a token in it would be shown too.
        raise SettingsError(
            f"SPARK_REMOTE: {error} Put the URL alone in SPARK_REMOTE and the token in "
            f"{SPARK_TOKEN_VARIABLE}, which is never shown or logged."
        ) from None
    except SparkUrlError as error:
        raise SettingsError(
            f"SPARK_REMOTE: {error} The local server `make spark` starts is {DEFAULT_SPARK_REMOTE}."
        ) from None


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
        duckdb_memory_limit=_memory_limit(env),
        data_dir=resolve_path(env.get("JAFFLE_DATA_DIR") or str(SAMPLE_DATA_DIR)),
        chart_dir=resolve_path(env.get("JAFFLE_CHART_DIR") or "data/charts"),
        open_chart=_flag(env, "JAFFLE_OPEN_CHART", default=False),
        has_display=sys.platform in ("darwin", "win32")
        or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")),
        variables_set=frozenset(name for name in VARIABLES if env.get(name)),
        spark_remote=_spark_remote(env) if environment == "spark" else DEFAULT_SPARK_REMOTE,
        warm_worker=_flag(env, "JAFFLE_WARM_WORKER", default=True),
    )


# The variables deploy/production/dagster.yaml reads, in the order of PostgresServer's fields.
POSTGRES_VARIABLES = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


@dataclass(frozen=True)
class PostgresServer:
    """Where Dagster's run history and event logs live under `make serve`."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def variables(self) -> dict[str, str]:
        """The environment deploy/production/dagster.yaml reads this server from."""
        values = (self.host, str(self.port), self.user, self.password, self.database)
        return dict(zip(POSTGRES_VARIABLES, values, strict=True))


@dataclass(frozen=True)
class ServeSettings:
    """`make serve`: where its state lives, where it listens, and which PostgreSQL it uses."""

    # The local cluster, its password, the instance's DAGSTER_HOME, logs and PID files.
    state_dir: Path
    webserver_host: str
    webserver_port: int
    # None: any free port, chosen at start.
    code_server_port: int | None
    # A server given in the environment; None: a local cluster in state_dir.
    postgres: PostgresServer | None
    local_postgres_port: int | None


def _port(env: dict[str, str], name: str, default: int | None) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SettingsError(f"{name}={value!r} must be a TCP port number (1 to 65535).")
    return int(value)


def _postgres_from_url(url: str) -> PostgresServer:
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres") or not parts.hostname:
        raise SettingsError(
            f"DAGSTER_PG_URL must look like postgresql://user:password@host:5432/database; "
            f"it starts with {parts.scheme or url[:12]!r}."
        )
    return PostgresServer(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or "postgres",
    )


def _given_postgres(env: dict[str, str]) -> PostgresServer | None:
    url, host = env.get("DAGSTER_PG_URL", "").strip(), env.get("DAGSTER_PG_HOST", "").strip()
    if url and host:
        raise SettingsError("Both DAGSTER_PG_URL and DAGSTER_PG_HOST are set: keep one of them.")
    if url:
        return _postgres_from_url(url)
    if not host:
        return None
    missing = [name for name in ("DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD") if not env.get(name)]
    if missing:
        raise SettingsError(
            f"DAGSTER_PG_HOST={host!r} names a PostgreSQL server, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: set {'it' if len(missing) == 1 else 'them'}, "
            "or unset DAGSTER_PG_HOST to use a local cluster."
        )
    return PostgresServer(
        host=host,
        port=_port(env, "DAGSTER_PG_PORT", 5432),
        user=env["DAGSTER_PG_USER"],
        password=env["DAGSTER_PG_PASSWORD"],
        database=env.get("DAGSTER_PG_DB") or "dagster",
    )


def load_serve_settings(env: dict[str, str] | None = None) -> ServeSettings:
    """Read `make serve`'s settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    postgres = _given_postgres(env)
    return ServeSettings(
        state_dir=resolve_path(env.get("JAFFLE_SERVE_DIR") or ".serve"),
        # Loopback unless told otherwise: the UI can launch runs and has no login.
        webserver_host=env.get("DAGSTER_WEBSERVER_HOST") or "127.0.0.1",
        # UI_PORT, as `make run` takes it; Dagster's own name for it wins where both are set.
        webserver_port=_port(env, "DAGSTER_WEBSERVER_PORT", None) or _port(env, "UI_PORT", 3000),
        code_server_port=_port(env, "DAGSTER_CODE_SERVER_PORT", None),
        postgres=postgres,
        local_postgres_port=None if postgres else _port(env, "DAGSTER_PG_PORT", None),
    )
