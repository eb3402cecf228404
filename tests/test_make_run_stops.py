"""Ctrl-C stops `make run` completely within 10 s: dg dev, the webserver, the daemon, the code
servers and a run worker in the middle of a run.

A terminal's Ctrl-C sends SIGINT to its foreground process group: `make` and what it started.
"""

import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

import psutil

from dagster_project.settings import REPO_ROOT
from tests.browser import DagsterDev, free_port, stop_process_group, wait_for
from tests.dagster_dev import launch_job, run_status, run_workers
from tests.helpers import MAKE_UP_TO_DATE, make_project_env, shell_environment

STOP_PROMISE = 10
# Bounds for a busy machine, not expectations: `make run` serves in 10 to 15 s here on a quiet one.
START_TIMEOUT = 240


def described(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline()[:5])}"
    except psutil.Error:
        return str(process.pid)


def test_ctrl_c_stops_make_run_and_everything_it_started_within_10_s(tmp_path: Path):
    env = make_project_env(tmp_path)
    port = free_port()
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        make = subprocess.Popen(
            ["make", *MAKE_UP_TO_DATE, "run", f"UI_PORT={port}"],
            cwd=REPO_ROOT,
            env=shell_environment(env.variables),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # The terminal's process group, whose leader is make.
            start_new_session=True,
        )
    processes: list[psutil.Process] = []
    try:
        server = DagsterDev(make, f"http://127.0.0.1:{port}", log)
        wait_for("make run to serve the UI", server.is_serving, START_TIMEOUT)
        wait_for("the code location to load", server.code_location_loaded, START_TIMEOUT)
        run_id = launch_job(server, "jaffle_shop_job")
        wait_for(f"run {run_id} to start", lambda: run_status(server, run_id) == "STARTED", START_TIMEOUT)
        wait_for("the run worker", lambda: run_workers(server), START_TIMEOUT)
        leader = psutil.Process(make.pid)
        processes += [leader, *leader.children(recursive=True)]

        os.killpg(make.pid, signal.SIGINT)
        _, alive = psutil.wait_procs(processes, timeout=STOP_PROMISE)

        assert [described(process) for process in alive] == [], log.read_text(errors="replace")[-3000:]
    finally:
        stop_process_group(make)
        # dg dev leads a process group of its own, whose members outlive make if the test fails.
        for process in processes:
            with suppress(psutil.Error):
                process.kill()
