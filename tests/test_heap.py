"""The processes that load Dagster or dbt spare the garbage collector their long-lived objects.

How much time that saves is measured by `make bench` (docs/benchmarks.md, "Garbage collection"
and "Exit"), not here. These tests check what saves it: the objects made while loading are
frozen once loaded, with the collector back on for what the run makes; and each kind of process
freezes its objects once its last ``atexit`` handler has run. The exit scripts register a
reporter first, so that it runs last, and print whether the objects made after loading are
frozen by then.
"""

import gc
import os
import subprocess
import sys

import pytest

from dagster_project.heap import long_lived
from dagster_project.settings import REPO_ROOT

# Whether the objects in `made`, made once the process had loaded (loading froze what was
# there by then), are left out of the collector's walk by the time the last handler runs.
REPORT_AT_EXIT = (
    "import atexit, gc, sys\n"
    "def report():\n"
    "    walked = {id(o) for o in gc.get_objects()}\n"
    "    print('made frozen at exit:', not any(id(o) in walked for o in [made, *made]), flush=True)\n"
    "atexit.register(report)\n"
)
MAKE = "made = [[] for _ in range(1_000)]\n"
# dbt as a run starts it, with dbt's command replaced by one that makes those objects.
JAFFLE_DBT_MAKING_OBJECTS = (
    "import gc, sys\n"
    "import dbt.cli.main\n"
    "def cli():\n"
    "    global made\n"
    "    made = [[] for _ in range(1_000)]\n"
    "    print('frozen after loading:', gc.get_freeze_count(), gc.isenabled(), flush=True)\n"
    "    return 0\n"
    "dbt.cli.main.cli = cli\n"
    "sys.argv = ['jaffle-dbt', '--version']\n"
    "from dagster_project.defs.transform.dbt_child import main\n"
    "main()\n"
)


def python(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def reported(done: subprocess.CompletedProcess, label: str) -> list[str]:
    lines = [line for line in done.stdout.splitlines() if line.startswith(label)]
    assert lines, f"no '{label}'; exit code {done.returncode}, stderr:\n{done.stderr[-2000:]}"
    return lines[-1].removeprefix(label).split()


@pytest.fixture
def env(project_env) -> dict[str, str]:
    """The environment of a process the project starts: this one's, with the test's own paths."""
    return {**os.environ, **project_env.variables}


def made_frozen_at_exit(script: str, env: dict[str, str]) -> bool:
    return reported(python(REPORT_AT_EXIT + script, env), "made frozen at exit:") == ["True"]


def test_a_process_that_loads_the_definitions_freezes_its_objects_at_exit(env):
    # A Dagster CLI, a code server and a run all load the definitions.
    script = "import dagster_project.definitions\n" + MAKE
    assert made_frozen_at_exit(script, env)


def test_a_process_that_imports_nothing_of_the_project_collects_as_python_does(env):
    # The reporter alone: the answer above is the project's doing, not Python's default.
    assert not made_frozen_at_exit("import dagster\n" + MAKE, env)


def test_dbt_started_as_a_run_starts_it_freezes_its_objects_at_exit(env):
    assert made_frozen_at_exit(JAFFLE_DBT_MAKING_OBJECTS, env)


@pytest.fixture
def collector_restored():
    """This test process's collector as it was, whatever a test below left."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_objects_made_long_lived_are_frozen_and_the_collector_is_on_again_after(collector_restored):
    gc.enable()
    gc.unfreeze()
    with long_lived():
        paused = not gc.isenabled()
        made = [[] for _ in range(1_000)]
    assert paused, "the collector ran while the long-lived objects were made"
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    assert frozen >= len(made)
    tracked = {id(objects) for objects in gc.get_objects()}
    assert not any(id(objects) in tracked for objects in made), "made objects are still walked"


def test_the_collector_is_on_again_when_loading_fails(collector_restored):
    gc.enable()
    with pytest.raises(ImportError), long_lived():
        import dagster_project.no_such_module  # noqa: F401
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_restored):
    gc.disable()
    with long_lived():
        pass
    assert not gc.isenabled()


def test_loading_the_definitions_freezes_what_they_made_and_leaves_the_collector_on(env):
    done = python(
        "import gc, dagster_project.definitions\nprint(gc.isenabled(), gc.get_freeze_count())",
        env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    enabled, frozen = done.stdout.split()
    assert enabled == "True"
    # Dagster, dagster-dbt, dbt and the project: hundreds of thousands.
    assert int(frozen) > 100_000


def test_dbt_started_as_a_run_starts_it_runs_with_its_modules_frozen_and_the_collector_on(env):
    done = python(JAFFLE_DBT_MAKING_OBJECTS, env)
    frozen, enabled = reported(done, "frozen after loading:")
    assert enabled == "True"
    # dbt's modules, frozen before dbt's command ran.
    assert int(frozen) > 10_000
