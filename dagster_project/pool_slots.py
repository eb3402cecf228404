"""Pool slots left behind by runs whose process died.

Dagster frees a step's slot in a concurrency pool when the step ends. A run process killed
outright never says so, and with the ``duckdb`` pool limited to one slot every later run would
wait for that slot forever.
"""

import os

from dagster import DagsterEventType, DagsterInstance

from dagster_project.warehouse import DUCKDB_POOL


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, but another user's
    return True


def _run_process_id(instance: DagsterInstance, run_id: str) -> int | None:
    started = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    return started[0].event_log_entry.dagster_event.pid if started else None


def _is_abandoned(instance: DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return True
    pid = _run_process_id(instance, run_id)
    if pid is None or _process_is_alive(pid):
        return False
    instance.report_run_failed(
        run,
        f"The process running this run (PID {pid}) ended without finishing it, "
        "for example killed with SIGKILL or out of memory. Marked as failed so that its "
        f"slot in the {DUCKDB_POOL} pool is released.",
    )
    return True


def release_slots_of_dead_runs(instance: DagsterInstance) -> list[str]:
    """Free the ``duckdb`` pool slots held by runs whose process is gone; return their run ids.

    Dagster frees a slot when its step ends. A run process killed outright (SIGKILL, out of
    memory, a closed laptop) never says so, and every later run would then wait for that slot
    forever. Only runs started on this machine can be checked, which is where this project's
    runs execute (in-process executor, default run launcher).
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(DUCKDB_POOL)
    holders = {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}
    released = sorted(run_id for run_id in holders if _is_abandoned(instance, run_id))
    for run_id in released:
        storage.free_concurrency_slots_for_run(run_id)
    return released
