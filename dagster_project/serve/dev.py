"""`make run`'s `dg dev`, stopped completely within 10 s of Ctrl-C.

On Ctrl-C, `dg dev`, its webserver, daemon and code servers stop serving at once, and a run in
progress is interrupted; then each of these Python processes spends seconds of CPU tearing down
its interpreter (a full garbage collection over the definitions, the dbt manifest and the asset
graph), all at the same time, and `dg dev` only starts stopping the code server once the webserver
and the daemon have exited. On a busy 2-core machine that adds up to tens of seconds (10 to 25 s
measured here, up to 60 s seen) before the last process is gone. This runs the command in a process group of its own, passes the interrupt on to all of it,
and kills what is left of the group after STOP_GRACE: by then only teardown is left, or a run
worker that run monitoring fails at the next start (docs/reliability.md).

Standard library only, so it adds nothing to the start of `make run`.

    python -m dagster_project.serve.dev dg dev --host 127.0.0.1 --port 3000
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress

# Seconds from Ctrl-C to killing what is left: enough for the servers to stop and an interrupted
# run to record its end on a busy machine, and short of the 10 s promised with a margin for the
# kill itself.
STOP_GRACE = 6.0
POLL = 0.1


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_group(process: subprocess.Popen, deadline: float) -> bool:
    """Reap the leader and wait for every member of its group to exit; False at the deadline."""
    while time.monotonic() < deadline:
        process.poll()
        if not group_alive(process.pid):
            return True
        time.sleep(POLL)
    return False


def kill_group(process: subprocess.Popen) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    wait_for_group(process, time.monotonic() + STOP_GRACE)


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM reached this process."""


def _interrupt(signum, frame) -> None:
    raise Interrupted


def run(command: list[str]) -> int:
    # A session of its own: the group holds everything dg dev starts, even processes whose parent
    # has exited, and the terminal's Ctrl-C reaches only this process, which passes it on once.
    process = subprocess.Popen(command, start_new_session=True)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = process.wait()
    except Interrupted:
        return stop(process)
    # dg dev stopped by itself (a port in use, an error it printed): nothing of it may stay behind.
    kill_group(process)
    return code


def stop(process: subprocess.Popen) -> int:
    # make passes a SIGTERM on to its recipe, so one stop request can arrive twice: the stop
    # already under way is the answer to both.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    if not wait_for_group(process, time.monotonic() + STOP_GRACE):
        print(
            f"dg dev's processes had not all exited {STOP_GRACE:.0f} s after the interrupt; "
            "killed what was left.",
            file=sys.stderr,
            flush=True,
        )
        kill_group(process)
    return 0


def main(arguments: list[str]) -> int:
    if not arguments:
        print("usage: python -m dagster_project.serve.dev COMMAND [ARGUMENT…]", file=sys.stderr)
        return 2
    return run(arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
