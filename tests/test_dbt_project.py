"""The dbt manifest is parsed at set-up, and again only when a dbt file changes."""

import os
import subprocess
import sys
import time

from dagster_project.defs.transform.project import manifest_is_stale, parsed_files
from dagster_project.settings import DBT_PROJECT_DIR, REPO_ROOT


def test_the_manifest_is_stale_only_when_a_parsed_file_is_newer(tmp_path):
    model = tmp_path / "models" / "orders.sql"
    model.parent.mkdir()
    model.write_text("select 1")
    manifest = tmp_path / "target" / "manifest.json"
    assert manifest_is_stale(manifest, [model])
    manifest.parent.mkdir()
    manifest.write_text("{}")
    now = time.time()
    os.utime(model, (now - 60, now - 60))
    assert not manifest_is_stale(manifest, [model])
    os.utime(model, (now + 60, now + 60))
    assert manifest_is_stale(manifest, [model])


def test_the_files_dbt_parses_are_the_project_sql_and_yaml_and_the_profile():
    files = {path.relative_to(REPO_ROOT).as_posix() for path in parsed_files()}
    assert {
        "profiles.yml",
        "jaffle_shop/dbt_project.yml",
        "jaffle_shop/models/marts/customers.sql",
        "jaffle_shop/macros/cents_to_dollars.sql",
    } <= files
    assert not any(name.startswith(("jaffle_shop/target/", "jaffle_shop/logs/")) for name in files)


def test_loading_the_code_as_dagster_dev_does_runs_no_dbt_parse_when_nothing_changed(project_env):
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    assert not manifest_is_stale(manifest, parsed_files()), "run `make setup` first"
    written = manifest.stat().st_mtime_ns
    # Every run worker under `dagster dev`, and every `dg` command, has this variable set.
    env = {**os.environ, **project_env.variables, "DAGSTER_IS_DEV_CLI": "1"}
    subprocess.run(
        [sys.executable, "-c", "import dagster_project.definitions"], env=env, check=True, timeout=300
    )
    assert manifest.stat().st_mtime_ns == written, "importing the definitions re-parsed the dbt project"
