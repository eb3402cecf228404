"""JAFFLE_ENV picks the environment: the Dagster resources and the dbt target, in one place."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
import yaml
from dagster import Definitions, EnvVar

from dagster_project.definitions import build_defs
from dagster_project.defs.resources import build_resources
from dagster_project.instance.warm_worker import in_code_server
from dagster_project.settings import (
    ENVIRONMENTS,
    REPO_ROOT,
    PostgresServer,
    ServeSettings,
    SettingsError,
    default_memory_limit,
    load_serve_settings,
    load_settings,
    machine_memory_bytes,
)

PROD = {"JAFFLE_ENV": "prod", "JAFFLE_PROD_DATABASE": "md:jaffle_shop", "MOTHERDUCK_TOKEN": "t0ken"}


def settings_for(environment: str):
    return load_settings(PROD if environment == "prod" else {"JAFFLE_ENV": environment})


def test_dev_is_the_default_and_uses_the_local_duckdb_file():
    settings = load_settings({})
    assert settings.environment == "dev"
    assert settings.duckdb_database == str(REPO_ROOT / "data" / "jaffle.duckdb")


def test_the_test_environment_uses_temporary_files():
    database = Path(load_settings({"JAFFLE_ENV": "test"}).duckdb_database)
    # One fixed name: the code server and the run worker are separate processes.
    assert database == Path(tempfile.gettempdir()) / "jaffle-test" / "jaffle.duckdb"


def test_a_blank_environment_is_dev_and_the_name_is_read_in_any_case():
    assert load_settings({"JAFFLE_ENV": "  "}).environment == "dev"
    assert load_settings({"JAFFLE_ENV": " Test "}).environment == "test"


def test_without_an_argument_the_settings_are_read_from_the_process_environment(monkeypatch):
    monkeypatch.setenv("JAFFLE_ENV", "test")
    assert load_settings().environment == "test"


def test_the_duckdb_file_data_and_chart_folders_are_taken_relative_to_the_repository():
    settings = load_settings(
        {"DUCKDB_DATABASE": "elsewhere/shop.duckdb", "JAFFLE_DATA_DIR": "/srv/csv", "JAFFLE_CHART_DIR": "out"}
    )
    assert settings.duckdb_database == str(REPO_ROOT / "elsewhere" / "shop.duckdb")
    assert (settings.data_dir, settings.chart_dir) == (Path("/srv/csv"), REPO_ROOT / "out")
    defaults = load_settings({})
    assert (defaults.data_dir, defaults.chart_dir) == (
        REPO_ROOT / "data" / "sample",
        REPO_ROOT / "data" / "charts",
    )


def test_the_warm_worker_is_on_unless_turned_off_and_only_a_code_server_enables_it():
    assert load_settings({}).warm_worker
    assert load_settings({"JAFFLE_WARM_WORKER": "1"}).warm_worker
    assert not load_settings({"JAFFLE_WARM_WORKER": "0"}).warm_worker
    with pytest.raises(SettingsError) as refused:
        load_settings({"JAFFLE_WARM_WORKER": "on"})
    assert str(refused.value) == "JAFFLE_WARM_WORKER='on' must be 0 or 1."
    # `dagster api grpc` is a code server; the CLI, the daemon and the webserver are not.
    assert in_code_server(["/venv/lib/dagster/__main__.py", "api", "grpc", "--module-name", "m"])
    assert not in_code_server(["/venv/bin/dagster", "asset", "materialize", "--select", "*"])
    assert not in_code_server(["/venv/bin/dagster-daemon", "run"])


def test_the_chart_opens_only_when_asked_and_where_a_display_can_show_it():
    assert not load_settings({}).open_chart
    assert load_settings({"JAFFLE_OPEN_CHART": "1"}).open_chart
    assert not load_settings({"JAFFLE_OPEN_CHART": "0"}).open_chart
    with pytest.raises(SettingsError) as refused:
        load_settings({"JAFFLE_OPEN_CHART": "yes"})
    assert str(refused.value) == "JAFFLE_OPEN_CHART='yes' must be 0 or 1."
    if sys.platform == "linux":
        assert not load_settings({}).has_display
        assert load_settings({"WAYLAND_DISPLAY": "wayland-0"}).has_display
        assert load_settings({"DISPLAY": ":0"}).has_display


def test_duckdb_may_use_a_quarter_of_the_machines_memory_unless_told(monkeypatch):
    assert default_memory_limit(16 * 2**30) == "4096MiB"
    assert load_settings({}).duckdb_memory_limit == default_memory_limit(machine_memory_bytes())
    assert machine_memory_bytes() == pytest.approx(psutil.virtual_memory().total, rel=0.01)
    assert load_settings({"DUCKDB_MEMORY_LIMIT": " 1.5 GiB "}).duckdb_memory_limit == "1.5GiB"
    assert load_settings({"DUCKDB_MEMORY_LIMIT": "512mb"}).duckdb_memory_limit == "512mb"


def test_a_memory_limit_duckdb_would_refuse_is_refused_saying_what_to_write():
    with pytest.raises(SettingsError) as refused:
        load_settings({"DUCKDB_MEMORY_LIMIT": "0.0GB"})
    assert str(refused.value) == (
        "DUCKDB_MEMORY_LIMIT='0.0GB' is not a size DuckDB accepts: give a number and a unit, like 4GB "
        "or 512MiB (DuckDB takes no percentages), or unset it for a quarter of this machine's memory."
    )


def test_an_unknown_environment_is_refused_with_the_choices():
    with pytest.raises(SettingsError, match=r"JAFFLE_ENV='staging'.*dev, test, prod"):
        load_settings({"JAFFLE_ENV": "staging"})


@pytest.mark.parametrize("missing", ["MOTHERDUCK_TOKEN", "JAFFLE_PROD_DATABASE"])
def test_prod_without_a_setting_fails_naming_the_variable(missing):
    env = {name: value for name, value in PROD.items() if name != missing}
    with pytest.raises(SettingsError, match=f"JAFFLE_ENV=prod needs {missing}, not set"):
        load_settings(env)


def test_prod_without_either_setting_says_what_each_should_hold():
    with pytest.raises(SettingsError) as refused:
        load_settings({"JAFFLE_ENV": "prod"})
    assert str(refused.value) == (
        "JAFFLE_ENV=prod needs MOTHERDUCK_TOKEN and JAFFLE_PROD_DATABASE, not set in the environment. "
        "Set JAFFLE_PROD_DATABASE to the MotherDuck database (for example md:jaffle_shop) and "
        "MOTHERDUCK_TOKEN to a MotherDuck access token, or use JAFFLE_ENV=dev for the local DuckDB file."
    )


def test_prod_refuses_a_database_that_is_not_on_motherduck():
    with pytest.raises(SettingsError, match=r"JAFFLE_PROD_DATABASE='jaffle\.duckdb'.*md:"):
        load_settings({**PROD, "JAFFLE_PROD_DATABASE": "jaffle.duckdb"})


def test_prod_definitions_load_and_validate_without_connecting():
    # No network here: if loading connected to MotherDuck, this would fail.
    settings = settings_for("prod")
    Definitions.validate_loadable(build_defs(settings))
    resources = build_resources(settings)
    # Shown in the UI as the variable's name; the token is no config value at all.
    assert isinstance(resources["duckdb"].database, EnvVar)
    assert resources["duckdb"].database == "JAFFLE_PROD_DATABASE"
    assert "t0ken" not in repr(resources)


def test_spark_takes_the_local_server_by_default_and_a_token_only_as_a_secret():
    resources = build_resources(load_settings({"JAFFLE_ENV": "spark"}))
    assert resources["duckdb"].remote == "sc://127.0.0.1:15002"
    assert resources["duckdb"].token is None
    env = {"JAFFLE_ENV": "spark", "SPARK_REMOTE": "sc://spark.example:443", "SPARK_CONNECT_TOKEN": "s3cret"}
    resources = build_resources(load_settings(env))
    assert resources["duckdb"].remote == "SPARK_REMOTE"
    assert (
        isinstance(resources["duckdb"].token, EnvVar) and resources["duckdb"].token == "SPARK_CONNECT_TOKEN"
    )
    assert "s3cret" not in repr(resources)


@pytest.mark.parametrize(
    ("remote", "says"),
    [
        (
            "http://127.0.0.1:15002",
            r"SPARK_REMOTE: 'http://127\.0\.0\.1:15002' is not a Spark Connect URL.*make spark",
        ),
        (
            "sc://host:443/;token=s3cret",
            "Put the URL alone in SPARK_REMOTE and the token in SPARK_CONNECT_TOKEN",
        ),
    ],
)
def test_spark_refuses_a_bad_url_naming_the_setting(remote, says):
    with pytest.raises(SettingsError, match=says) as error:
        load_settings({"JAFFLE_ENV": "spark", "SPARK_REMOTE": remote})
    assert "s3cret" not in str(error.value)
    # Only the Spark environment reads it.
    assert load_settings({"SPARK_REMOTE": remote}).spark_remote == "sc://127.0.0.1:15002"


def test_the_duckdb_environments_never_import_pyspark():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, dagster_project.definitions; print('pyspark' in sys.modules)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "JAFFLE_ENV": "dev"},
    )
    assert result.stdout.strip() == "False"


def test_a_data_folder_from_the_environment_is_shown_as_its_variable():
    from_env = build_resources(load_settings({"JAFFLE_DATA_DIR": "data/sample"}))["data_source"]
    assert isinstance(from_env.directory, EnvVar) and from_env.directory == "JAFFLE_DATA_DIR"
    default = build_resources(load_settings({}))["data_source"]
    assert default.directory == str(REPO_ROOT / "data" / "sample")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_environment_picks_the_dbt_target_of_the_same_name(environment):
    profile = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text())["jaffle_shop"]
    assert set(profile["outputs"]) == set(ENVIRONMENTS)
    assert build_resources(settings_for(environment))["dbt"].target == environment


def test_dbt_alone_follows_jaffle_env_to_the_same_target_and_database(monkeypatch):
    """A bare `dbt build` in jaffle_shop/ agrees with Dagster, rendered by dbt's own code."""
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    for name, value in PROD.items():
        monkeypatch.setenv(name, value)
    set_invocation_context(os.environ)
    raw = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text())["jaffle_shop"]
    rendered = ProfileRenderer({}).render_data(
        {"target": raw["target"], "outputs": {"prod": raw["outputs"]["prod"]}}
    )
    assert rendered["target"] == "prod"
    assert rendered["outputs"]["prod"]["path"] == settings_for("prod").duckdb_database


def test_importing_the_definitions_with_prod_and_nothing_else_fails_naming_the_variables():
    result = subprocess.run(
        [sys.executable, "-c", "import dagster_project.definitions"],
        cwd=REPO_ROOT,
        env={"JAFFLE_ENV": "prod", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("dagster_project.settings.SettingsError: JAFFLE_ENV=prod needs")
    assert "MOTHERDUCK_TOKEN and JAFFLE_PROD_DATABASE" in last_line


def test_the_chart_resource_takes_its_folder_and_whether_to_open_from_the_settings():
    settings = load_settings({"JAFFLE_CHART_DIR": "out/charts", "JAFFLE_OPEN_CHART": "1", "DISPLAY": ":0"})
    report = build_resources(settings)["report"]
    assert report.directory == str(REPO_ROOT / "out" / "charts")
    assert report.open_in_browser is True and report.has_display is True
    headless = build_resources(load_settings({"JAFFLE_OPEN_CHART": "1"}))["report"]
    assert headless.should_open() is False


# `make serve` (tests/test_serve.py runs the deployment these settings describe).

PG_HOST = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_USER": "ops", "DAGSTER_PG_PASSWORD": "pw"}


def test_make_serve_defaults_to_a_local_cluster_and_the_ui_on_loopback_port_3000():
    assert load_serve_settings({}) == ServeSettings(
        state_dir=REPO_ROOT / ".serve",
        webserver_host="127.0.0.1",
        webserver_port=3000,
        code_server_port=None,
        postgres=None,
        local_postgres_port=None,
    )


def test_make_serve_takes_its_folder_host_and_ports_from_the_environment():
    settings = load_serve_settings(
        {
            "JAFFLE_SERVE_DIR": "/srv/jaffle",
            "DAGSTER_WEBSERVER_HOST": "0.0.0.0",
            "DAGSTER_CODE_SERVER_PORT": "65535",
            "DAGSTER_PG_PORT": "1",
        }
    )
    assert settings.state_dir == Path("/srv/jaffle")
    assert settings.webserver_host == "0.0.0.0"
    assert (settings.code_server_port, settings.local_postgres_port) == (65535, 1)


@pytest.mark.parametrize("port", ["0", "65536", "80a", "-1"])
def test_a_port_outside_1_to_65535_is_refused_naming_the_variable(port):
    with pytest.raises(SettingsError) as refused:
        load_serve_settings({"DAGSTER_CODE_SERVER_PORT": f" {port} "})
    assert str(refused.value) == f"DAGSTER_CODE_SERVER_PORT={port!r} must be a TCP port number (1 to 65535)."


def test_a_postgresql_host_is_used_on_port_5432_with_database_dagster_unless_told():
    settings = load_serve_settings(PG_HOST)
    assert settings.postgres == PostgresServer("db.internal", 5432, "ops", "pw", "dagster")
    assert settings.local_postgres_port is None
    assert settings.postgres.variables == {
        "DAGSTER_PG_HOST": "db.internal",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USER": "ops",
        "DAGSTER_PG_PASSWORD": "pw",
        "DAGSTER_PG_DB": "dagster",
    }
    told = load_serve_settings({**PG_HOST, "DAGSTER_PG_PORT": "6543", "DAGSTER_PG_DB": "runs"})
    assert told.postgres == PostgresServer("db.internal", 6543, "ops", "pw", "runs")
    # DAGSTER_PG_PORT is the given server's port, not a local cluster's.
    assert told.local_postgres_port is None


def test_a_postgresql_host_without_user_and_password_is_refused_naming_both():
    with pytest.raises(SettingsError) as refused:
        load_serve_settings({"DAGSTER_PG_HOST": " db.internal "})
    assert str(refused.value) == (
        "DAGSTER_PG_HOST='db.internal' names a PostgreSQL server, but DAGSTER_PG_USER and "
        "DAGSTER_PG_PASSWORD are not set: set them, or unset DAGSTER_PG_HOST to use a local cluster."
    )


def test_a_postgresql_host_without_its_user_is_refused_naming_it():
    with pytest.raises(SettingsError) as refused:
        load_serve_settings({"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PASSWORD": "pw"})
    assert str(refused.value) == (
        "DAGSTER_PG_HOST='db.internal' names a PostgreSQL server, but DAGSTER_PG_USER is not set: "
        "set it, or unset DAGSTER_PG_HOST to use a local cluster."
    )


def test_make_serve_reads_the_process_environment_without_an_argument(monkeypatch):
    monkeypatch.setenv("UI_PORT", "3100")
    assert load_serve_settings().webserver_port == 3100


def test_a_postgresql_url_and_host_together_are_refused():
    with pytest.raises(
        SettingsError, match=r"^Both DAGSTER_PG_URL and DAGSTER_PG_HOST are set: keep one of them\.$"
    ):
        load_serve_settings({**PG_HOST, "DAGSTER_PG_URL": "postgresql://ops:pw@db.internal/runs"})


def test_a_postgresql_url_takes_port_5432_and_database_postgres_unless_told():
    settings = load_serve_settings({"DAGSTER_PG_URL": "postgresql+psycopg2://ops@db.internal"})
    assert settings.postgres == PostgresServer("db.internal", 5432, "ops", "", "postgres")
    assert load_serve_settings({"DAGSTER_PG_URL": "postgres://db.internal/"}).postgres == PostgresServer(
        "db.internal", 5432, "", "", "postgres"
    )


@pytest.mark.parametrize(
    ("url", "start"), [("mysql://ops:pw@db.internal/runs", "mysql"), ("ops@db.internal/runs", "ops@db.inter")]
)
def test_a_url_that_is_not_postgresql_is_refused_showing_how_it_starts(url, start):
    with pytest.raises(SettingsError) as refused:
        load_serve_settings({"DAGSTER_PG_URL": url})
    assert str(refused.value) == (
        "DAGSTER_PG_URL must look like postgresql://user:password@host:5432/database; "
        f"it starts with {start!r}."
    )
