"""The processes that import Dagster or dbt leave their heap to the system when they exit.

How long the exit takes is measured by `make bench` (docs/benchmarks.md, "Exit"), not here: these
tests check that each kind of process freezes its objects once its last ``atexit`` handler has
run, which is what spares it the collection. Each script registers a reporter first, so that
it runs last, and prints how many objects were frozen by then.
"""

import os
import subprocess
import sys

from dagster_project.settings import REPO_ROOT

REPORT_AT_EXIT = (
    "import atexit, gc, sys\n"
    "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count(), flush=True))\n"
)


def frozen_at_exit(script: str, env: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c", REPORT_AT_EXIT + script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("frozen at exit:")]
    assert lines, f"no report at exit; exit code {done.returncode}, stderr:\n{done.stderr[-2000:]}"
    return int(lines[-1].split(":")[1])


def test_a_process_that_loads_the_definitions_freezes_its_objects_at_exit(project_env):
    # A Dagster CLI, a code server and a run all load the definitions.
    frozen = frozen_at_exit("import dagster_project.definitions", {**os.environ, **project_env.variables})
    assert frozen > 10_000


def test_a_process_that_imports_nothing_of_the_project_collects_as_python_does(project_env):
    # The reporter alone: the count above is the project's doing, not Python's default.
    assert frozen_at_exit("import dagster", {**os.environ, **project_env.variables}) == 0


def test_dbt_started_as_a_run_starts_it_freezes_its_objects_at_exit(project_env):
    script = "sys.argv = ['jaffle-dbt', '--version']\nfrom dagster_project.defs.transform.dbt_child import main\nmain()\n"
    assert frozen_at_exit(script, {**os.environ, **project_env.variables}) > 10_000
