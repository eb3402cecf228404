"""Processes that import Dagster or dbt end without collecting their heap.

When Python exits it clears every module and runs the garbage collector over everything left:
for a process that imported Dagster or dbt, hundreds of thousands of objects, 0.4 to 1.2 s on
this machine after the process's last line has run (docs/benchmarks.md, "Exit"). Nothing waits
for that work but the process's parent: a shell prompt, or a run waiting for dbt to end. Frozen
objects (``gc.freeze``) are left to the operating system, which reclaims the memory at once.

Only objects in reference cycles are left unfinalized: what closes files or connections here
does so explicitly or through ``atexit`` (logging's flush, ``weakref.finalize``), which still runs.
"""

import atexit
import gc


def skip_collection_at_exit() -> None:
    """Freeze every object once the ``atexit`` handlers registered before this one have run."""
    atexit.register(gc.freeze)
