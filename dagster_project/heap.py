"""What the garbage collector walks in the processes that load Dagster or dbt: less, at start and at exit.

Loading the definitions (Dagster, dagster-dbt, dbt, the project) makes about a million objects
that live as long as the process: modules, classes, functions. While they are made, the
collector runs again and again over all of them, and each full pass over that heap takes 0.1 s
or more: 0.8 s of a headless run on this machine, 0.4 s of a run's dbt (docs/benchmarks.md,
"Garbage collection"). ``long_lived`` pauses the collector while such objects are made, then
freezes them (``gc.freeze``), so that later passes walk only what the run itself makes.

When Python exits it clears every module and runs the collector over everything left: 0.4 to
1.2 s after the process's last line has run (docs/benchmarks.md, "Exit"). Nothing waits for that
work but the process's parent: a shell prompt, or a run waiting for dbt to end. Frozen objects
are left to the operating system, which reclaims the memory at once.

Frozen objects are never collected: garbage in reference cycles made while loading stays until
the process ends, and objects in reference cycles are not finalized at exit. What closes files
or connections here does so explicitly or through ``atexit`` (logging's flush,
``weakref.finalize``), which still runs.
"""

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived() -> Iterator[None]:
    """Make objects that live as long as the process: no collection meanwhile, frozen after.

    The collector is back on afterwards, whether or not the block raised, unless it was off before.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def skip_collection_at_exit() -> None:
    """Freeze every object once the ``atexit`` handlers registered before this one have run."""
    atexit.register(gc.freeze)
