"""`make setup`: a venv compiled to bytecode, and instance settings written only into the
project's own DAGSTER_HOME (`make run` and `make test` depend on it).

The instance tests run the Makefile's `setup` (which both depend on) with the venv and the dbt manifest
taken as up to date (`-o`), so only the instance settings are at stake.
"""

import importlib.util
import os
import subprocess
from pathlib import Path

import dagster
import sqlalchemy

from dagster_project.settings import INSTANCE_TEMPLATE, REPO_ROOT

PROJECT_DAGSTER_HOME = REPO_ROOT / ".dagster_home"


def make_setup(dagster_home: Path | None, *options: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name not in ("DAGSTER_HOME", "MAKEFLAGS")}
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return subprocess.run(
        ["make", "-o", ".venv/.synced", "-o", "jaffle_shop/target/manifest.json", *options, "setup"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_dagster_yaml_in_a_dagster_home_you_set_is_never_overwritten(tmp_path: Path):
    mine = tmp_path / "dagster.yaml"
    mine.write_text("telemetry:\n  enabled: true\n")
    # Older than the template, which is when make would copy the template over it.
    os.utime(mine, (0, 0))

    make_setup(tmp_path)

    assert mine.read_text() == "telemetry:\n  enabled: true\n"


def test_a_dagster_home_you_set_without_settings_gets_one_line_on_how_to_copy_them(tmp_path: Path):
    result = make_setup(tmp_path)

    assert list(tmp_path.iterdir()) == []
    assert result.stderr.splitlines() == [
        f"DAGSTER_HOME ({tmp_path}) has no dagster.yaml, so Dagster runs without this project's "
        "settings (a 1 s run queue, dead runs failed by themselves); to use them: "
        f"mkdir -p {tmp_path} && cp {INSTANCE_TEMPLATE} {tmp_path}/"
    ]


def test_the_project_own_dagster_home_follows_the_template(tmp_path: Path):
    # A dry run (-n) with the template taken as just changed (-W): what make would do.
    commands = make_setup(None, "-n", "-W", "deploy/dagster.yaml").stdout.splitlines()

    assert f"cp deploy/dagster.yaml {PROJECT_DAGSTER_HOME}/dagster.yaml" in commands


def test_a_dagster_home_you_set_is_not_written_even_when_the_template_changes(tmp_path: Path):
    commands = make_setup(tmp_path, "-n", "-W", "deploy/dagster.yaml").stdout

    assert "cp deploy/dagster.yaml" not in commands


def test_the_venv_is_installed_compiled_so_no_python_start_compiles_a_library():
    # uv installs sources only, and where PYTHONDONTWRITEBYTECODE is set Python never caches what
    # it compiles: every start compiled Dagster again (Makefile). SQLAlchemy's Oracle dialect is
    # a module nothing here imports, so only the install can have compiled it.
    oracle = Path(sqlalchemy.__file__).parent / "dialects" / "oracle" / "base.py"
    for source in (Path(dagster.__file__), oracle):
        compiled = Path(importlib.util.cache_from_source(str(source)))
        assert compiled.is_file(), f"{source} has no bytecode ({compiled}): make setup must compile the venv"
