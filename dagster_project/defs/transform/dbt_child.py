"""``jaffle-dbt``: dbt, as a child process that dies with the process that started it.

dagster-dbt starts dbt as a subprocess of the run worker. When the worker is killed outright
(SIGKILL, the out-of-memory killer, a container stopped), nothing in it runs to stop dbt, which
then goes on for a minute or more: it rebuilds models nobody will publish and holds the DuckDB
file, so the next run fails on a lock. Linux's parent-death signal ends dbt the moment its
parent dies, whatever killed it. The resources start this script instead of ``dbt``; it is dbt's
own command-line entry point, in the same process, after that one call.
"""

import ctypes
import os
import signal
import sys

from dagster_project.heap import long_lived, skip_collection_at_exit

# <linux/prctl.h>
_PR_SET_PDEATHSIG = 1
# The PID of the process that starts dbt, set by it (``DbtCli.cli``): a parent that died before
# the signal was asked for sends none, and only its PID, read before the fork, tells.
PARENT_VARIABLE = "JAFFLE_DBT_PARENT"


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies; elsewhere, do nothing."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        return
    expected = os.environ.get(PARENT_VARIABLE)
    if expected and os.getppid() != int(expected):
        sys.exit(f"jaffle-dbt: the process that started dbt (PID {expected}) has already exited.")


def main() -> None:
    die_with_parent()
    # The run waits for dbt's exit, which would otherwise spend about 0.7 s collecting its heap.
    skip_collection_at_exit()
    # dbt's modules live as long as dbt does: 0.2 s less of collection while they load.
    with long_lived():
        from dbt.cli.main import cli

    sys.exit(cli())
