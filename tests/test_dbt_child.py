"""dbt dies with the run worker that started it, however the worker was killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from dagster_project.settings import REPO_ROOT
from tests.helpers import make_project_env

# A parent that starts a child as dagster-dbt starts dbt, prints the child's PID, then waits.
PARENT = """
import os, subprocess, sys
env = {**os.environ, "JAFFLE_DBT_PARENT": str(os.getpid())}
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env)
print(child.pid, flush=True)
child.wait()
"""
CHILD = "from dagster_project.defs.transform.dbt_child import die_with_parent; die_with_parent(); import time; time.sleep(120)"


def wait_until_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_the_child_is_killed_when_its_parent_is_killed_outright():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    child_pid = int(parent.stdout.readline())
    try:
        # Killed at once, maybe before the child has asked for the signal: it must still die.
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert wait_until_gone(child_pid), "the child outlived its killed parent"
    finally:
        if psutil.pid_exists(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_runs_start_dbt_through_the_child_entry_point(tmp_path):
    dbt = make_project_env(tmp_path).defs().resources["dbt"]
    assert Path(dbt.dbt_executable).name == "jaffle-dbt"
    completed = subprocess.run([dbt.dbt_executable, "--version"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "installed" in completed.stdout
