"""The README's commands beyond `make run` and `make test`, typed as a user would in a new terminal:
`make data`, `make materialize ALLOW_SHRINK=1`, `make sql`, and Dagster's own commands.

Each runs against a temporary DuckDB file, data folder and DAGSTER_HOME (or a temporary copy of
the project, where the command writes into the checkout).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from dagster_project.cli.datagen import generate
from dagster_project.settings import REPO_ROOT, SAMPLE_DATA_DIR
from tests.helpers import (
    VENV_BIN,
    copy_tracked_files,
    load_sample_tables,
    make_project_env,
    run_make,
    shell_environment,
)

# A Python warning (`SupersessionWarning: …`), Dagster's logger (`- WARNING -`) or dg's own
# (`To suppress this warning, …`); dbt's `WARN=0` summary is no warning.
WARNING = re.compile(r"Warning\b|- WARNING -|this warning")
# The README's headless Dagster command, once the venv is active and DAGSTER_HOME names the
# project's home (the test's own here). `dg check defs` and `dg list defs` take their telemetry
# setting the same way as `dg launch` (dg's CLI wrapper reads DAGSTER_HOME's dagster.yaml), and
# would add 15 s each.
DAGSTER_COMMANDS = ("dg launch --job jaffle_shop_job",)


def checkout_copy(root: Path) -> Path:
    """The files git tracks, as a fresh clone has them, with this checkout's venv."""
    copy_tracked_files(root)
    (root / ".venv").symlink_to(VENV_BIN.parent)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=60)
    return root


@pytest.mark.parametrize(
    ("daily", "folder", "files"),
    [
        ([], "scale-2", ["raw_customers.csv", "raw_orders.csv", "raw_payments.csv"]),
        (["DAILY=1"], "scale-2-daily", ["raw_customers.csv", "raw_orders", "raw_payments"]),
    ],
    ids=["single files", "day files"],
)
def test_make_data_generates_data_without_an_activated_venv_into_a_folder_git_ignores(
    tmp_path: Path, daily: list[str], folder: str, files: list[str]
):
    checkout = checkout_copy(tmp_path / "checkout")

    result = run_make("data", "SCALE=2", *daily, cwd=checkout, env=shell_environment())

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"200 raw_customers, 198 raw_orders, 226 raw_payments in data/{folder}"
    )
    generated = sorted(path.name for path in (checkout / "data" / folder).iterdir())
    assert generated == files
    if daily:
        days = sorted(path.name for path in (checkout / "data" / folder / "raw_orders").iterdir())
        assert len(days) > 100 and days[0] == "2018-01-01.csv", days
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", f"data/{folder}"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert untracked == ""


def test_make_materialize_with_allow_shrink_publishes_a_much_smaller_file(tmp_path: Path):
    env = make_project_env(tmp_path)
    # 300 customers published from the data folder, then the sample's 100 in the same folder:
    # two thirds fewer rows, more than the half the shrink check lets through by itself.
    shutil.rmtree(env.data_dir)
    generate(3, env.data_dir)
    with env.warehouse().get_connection() as conn:
        load_sample_tables(conn, env.data_dir)
    shutil.rmtree(env.data_dir)
    shutil.copytree(SAMPLE_DATA_DIR, env.data_dir)

    result = run_make("materialize", "ALLOW_SHRINK=1", env=shell_environment(env.variables))

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^Run \S+ succeeded\.$", result.stdout, re.MULTILINE), result.stdout[-3000:]
    assert env.query("select count(*) from raw_customers") == [(100,)]
    with DagsterInstance.from_config(str(env.dagster_home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.run_config == {"ops": {"raw_tables": {"config": {"allow_shrink": True}}}}


def test_allow_shrink_other_than_0_or_1_stops_make_before_any_run(tmp_path: Path):
    env = make_project_env(tmp_path)

    result = run_make("materialize", "ALLOW_SHRINK=yes", env=shell_environment(env.variables), timeout=60)

    assert result.returncode != 0
    assert "ALLOW_SHRINK=yes: use ALLOW_SHRINK=1 or leave it unset" in result.stderr
    assert "Run " not in result.stdout


def test_make_sql_opens_the_published_tables_read_only(tmp_path: Path):
    env = make_project_env(tmp_path)
    with env.warehouse().get_connection() as conn:
        load_sample_tables(conn)

    result = run_make(
        "sql",
        env=shell_environment(env.variables),
        stdin=".tables\nselect count(*) as customers\nfrom raw_customers;\ncreate table mine (x int);\n",
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "raw_customers" in result.stdout
    assert "│       100 │" in result.stdout
    assert "read-only" in result.stderr
    with env.warehouse().get_connection(read_only=True) as conn:
        assert not conn.execute("select * from duckdb_tables() where table_name = 'mine'").fetchall()


def test_make_sql_before_any_run_says_to_materialize_first(tmp_path: Path):
    env = make_project_env(tmp_path)

    result = run_make("sql", env=shell_environment(env.variables), timeout=60)

    assert result.returncode != 0
    assert f"The DuckDB file {env.database} does not exist yet: materialize first" in result.stderr


def test_dagster_commands_from_the_readme_record_their_run_for_the_ui_without_warnings_or_telemetry(
    tmp_path: Path,
):
    env = make_project_env(tmp_path)
    user_home = tmp_path / "home"
    user_home.mkdir()
    script = " && ".join(("source .venv/bin/activate", *DAGSTER_COMMANDS))

    result = subprocess.run(
        ["bash", "-c", script],
        cwd=REPO_ROOT,
        env=shell_environment({**env.variables, "HOME": str(user_home)}),
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert [line for line in output.splitlines() if WARNING.search(line)] == []
    with DagsterInstance.from_config(str(env.dagster_home)) as instance:
        (run,) = instance.get_runs()
        assert (run.job_name, run.status) == ("jaffle_shop_job", DagsterRunStatus.SUCCESS)
    # Dagster and dg write each telemetry event to a log under DAGSTER_HOME, or ~/.dagster without one.
    assert list(user_home.rglob("event.log")) == []
    assert list(env.dagster_home.rglob("event.log")) == []
