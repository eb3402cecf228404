"""DUCKDB_MEMORY_LIMIT: one DuckDB memory limit for the Python assets and for dbt, sized from the machine."""

import json

import pytest
import yaml
from dbt.config.renderer import ProfileRenderer
from dbt_common.context import set_invocation_context

from dagster_project.defs.resources import build_resources
from dagster_project.defs.transform.project import project_vars
from dagster_project.settings import REPO_ROOT, SettingsError, load_settings, machine_memory_bytes


def duckdb_setting(settings) -> str:
    with build_resources(settings)["duckdb"].get_connection() as conn:
        return conn.execute("select current_setting('memory_limit')").fetchone()[0]


def test_by_default_duckdb_may_use_a_quarter_of_the_machine(tmp_path):
    settings = load_settings({"DUCKDB_DATABASE": str(tmp_path / "jaffle.duckdb")})
    value, unit = duckdb_setting(settings).split()
    assert unit == "GiB" or unit == "MiB"
    shown = float(value) * (2**30 if unit == "GiB" else 2**20)
    # DuckDB shows one decimal.
    assert shown == pytest.approx(machine_memory_bytes() / 4, rel=0.02)


def test_the_limit_reaches_the_assets_and_dbt_and_the_manifest_is_prepared_with_it(tmp_path):
    settings = load_settings(
        {"DUCKDB_DATABASE": str(tmp_path / "jaffle.duckdb"), "DUCKDB_MEMORY_LIMIT": "300MiB"}
    )
    assert duckdb_setting(settings) == "300.0 MiB"

    # The vars the dbt step passes to `dbt build` are the ones the manifest was parsed with, so a
    # run never re-parses (dbt hashes the profile's settings).
    resource = build_resources(settings)["duckdb"]
    assert project_vars(settings) == resource.dbt_vars()
    cli_vars = json.loads(project_vars(settings)[1])

    set_invocation_context({})
    raw = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text())["jaffle_shop"]
    rendered = ProfileRenderer(cli_vars).render_data({"outputs": {"dev": raw["outputs"]["dev"]}})
    assert rendered["outputs"]["dev"]["settings"] == {"memory_limit": "300MiB"}


@pytest.mark.parametrize("value", ["80%", "4", "lots", "0GB"])
def test_a_size_duckdb_would_refuse_is_named_with_what_to_write(value):
    with pytest.raises(SettingsError) as error:
        load_settings({"DUCKDB_MEMORY_LIMIT": value})
    assert f"DUCKDB_MEMORY_LIMIT={value!r} is not a size DuckDB accepts" in str(error.value)
    assert "like 4GB or 512MiB" in str(error.value)
