"""Write-audit-publish, the whole lifecycle, written once for every engine.

Every step that writes the warehouse follows it (docs/reliability.md has the picture):

1. ``begin``: the step takes the run lease, then drops what runs that have ended left behind,
   asking the Dagster instance which runs have ended: never assuming it.
2. The step builds versions of its own in the build schema (``customers__<run id>``); nothing
   else is touched, so a failure can only leave this run's versions, which ``discard`` drops.
3. ``publish``: once every check that guards them has passed, the step points the published
   names at its versions, one metadata change whatever the tables' size, after making sure the
   published set stays consistent (``conflicts``). Only then does the step record
   materializations, so every one Dagster records is true when it is recorded.

A raw step whose tables a dbt model of the same run reads leaves its versions pending (``stage``)
and the dbt step publishes them together with the models, after the dbt tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from datetime import timedelta

from dagster import AssetExecutionContext, DagsterRunStatus, Failure, RetryRequested, RunsFilter
from dagster._core.launcher import WorkerStatus

from dagster_project.warehouse import (
    Entry,
    Session,
    State,
    Warehouse,
    WarehouseLockedError,
    parse_version,
    run_key,
)
from dagster_project.warehouse.catalog import restore_catalog

# Runs in these states may still write: their versions are never collected.
_MAY_STILL_WRITE = {
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
}


class PublishRefusedError(RuntimeError):
    """Publishing would leave the published tables disagreeing with each other."""


def conflicts(published: dict[str, Entry], new: dict[str, Entry]) -> dict[str, list[str]]:
    """Raw table -> the published objects that would read another version of its file.

    Every published object records the fingerprint of each raw file it was built from. After
    publishing ``new``, an object that names a fingerprint other than the published raw table's
    was built from data users no longer read: the marts would disagree with the raw tables and
    with each other.
    """
    proposed = {**published, **new}
    found: dict[str, list[str]] = {}
    for name, entry in sorted(proposed.items()):
        for raw, fingerprint in entry.inputs.items():
            if raw != name and raw in proposed and proposed[raw].inputs.get(raw) != fingerprint:
                found.setdefault(raw, []).append(name)
    return found


def refusal(found: dict[str, list[str]]) -> str:
    lines = [
        f"- {raw} changes, and {', '.join(readers)} read{'s' if len(readers) == 1 else ''} it but "
        "would not be rebuilt from it in this run."
        for raw, readers in found.items()
    ]
    also = sorted({reader for readers in found.values() for reader in readers})
    return (
        "Nothing was published: the tables users read would disagree with each other.\n"
        + "\n".join(lines)
        + f"\nSelect {', '.join(also)} too (or Materialize all), then materialize again."
    )


def publish(
    session: Session,
    run_id: str,
    new: dict[str, Entry],
    log: Callable[[str], None],
    state: State | None = None,
) -> None:
    """Point the published names at ``new`` (and this run's pending versions) in one step.

    ``state`` is the warehouse's state if the caller has read it since it took the run lease.
    """
    started = time.monotonic()
    state = state or session.read_state()
    new = {**state.pending.get(run_id, {}), **new}
    found = conflicts(state.published, new)
    if found:
        raise PublishRefusedError(refusal(found))
    session.commit_publish(run_id, new)
    # The benchmark reads this line: publishing is a metadata change, whatever the data's size.
    log(f"Published {', '.join(sorted(new))} in {time.monotonic() - started:.3f} s.")


def discard(session: Session, run_id: str) -> list[str]:
    """Drop every version this run built and did not publish, and its pending records."""
    state = session.read_state()
    published = {entry.version for entry in state.published.values()}
    mine = {
        name: kind
        for name, kind in session.build_objects().items()
        if (parsed := parse_version(name)) and parsed[1] == run_key(run_id) and name not in published
    }
    session.drop(mine)
    session.forget_pending([run_id])
    return list(mine)


def collect_garbage(
    session: Session, ended: Callable[[Iterable[str]], set[str]], run_id: str
) -> tuple[list[str], dict[str, list[str]]]:
    """Drop every version no published name reads whose run has ended.

    Returns the versions dropped, and the pending names of each ended run forgotten.

    ``ended`` answers, from the Dagster instance, which of the given run ids have ended. Runs
    it does not know (another instance's) are left alone: their state cannot be asked.
    """
    state = session.read_state()
    kept = reads_of(state.published.values())
    candidates: dict[str, list[str]] = {}
    objects = session.build_objects()
    for name in objects:
        parsed = parse_version(name)
        if parsed and name not in kept and parsed[1] != run_key(run_id):
            candidates.setdefault(parsed[1], []).append(name)
    pending_runs = [other for other in state.pending if other != run_id]
    finished = ended({*candidates, *(run_key(other) for other in pending_runs)})
    dropped = sorted(name for key, names in candidates.items() if key in finished for name in names)
    session.drop({name: objects[name] for name in dropped})
    forgotten = {other: sorted(state.pending[other]) for other in pending_runs if run_key(other) in finished}
    session.forget_pending(list(forgotten))
    return dropped, forgotten


def reads_of(entries: Iterable[Entry]) -> set[str]:
    """Every version these entries need: their own, and the versions their views read."""
    return {version for entry in entries for version in (entry.version, *entry.reads)}


def workspace_pointers(state: State, run_id: str) -> dict[str, str]:
    """What dbt reads under each name: this run's pending version, else the published one."""
    return {
        name: entry.version for name, entry in {**state.published, **state.pending.get(run_id, {})}.items()
    }


def ended_runs(context: AssetExecutionContext) -> Callable[[Iterable[str]], set[str]]:
    """Which runs (ids as version names write them) the instance says have ended.

    A run the instance still shows in flight is asked about through the instance's run
    launcher, as run monitoring would ask: one whose process is gone is reported failed first
    (a headless run killed outright has no daemon to notice it), so the instance says so too.
    """

    def ended(keys: Iterable[str]) -> set[str]:
        keys = set(keys)
        if not keys:
            return set()
        instance = context.instance
        records = instance.get_run_records(RunsFilter(run_ids=[_run_id(key) for key in keys]))
        found = set()
        for record in records:
            run = record.dagster_run
            if run.status in _MAY_STILL_WRITE and not _reported_dead(instance, run):
                continue
            found.add(run_key(run.run_id))
        return found

    return ended


def _reported_dead(instance, run) -> bool:
    """Whether the run launcher finds the run's process gone; if so, the run is reported failed."""
    launcher = instance.run_launcher
    if run.status != DagsterRunStatus.STARTED or not launcher.supports_check_run_worker_health:
        return False
    health = launcher.check_run_worker_health(run)
    if health.status != WorkerStatus.FAILED:
        return False
    instance.report_run_failed(run, health.msg)
    return True


def _run_id(key: str) -> str:
    return f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}"


# The tag declarative automation puts on the runs it launches (dagster_project/defs/automation.py).
TRIGGER_TAG = "jaffle/trigger"
AUTOMATED = "automation"
# How often, and after how long, a step of an automated run tries again a warehouse that another
# program holds: after 2, 4, 8, 16 and 32 minutes, an hour in all; then the run fails.
LOCK_RETRIES = 5
FIRST_RETRY_DELAY = timedelta(minutes=2)


def retry_delay(attempt: int) -> timedelta:
    """How long the ``attempt``-th retry (from 1) waits before it tries the warehouse again."""
    return FIRST_RETRY_DELAY * 2 ** (attempt - 1)


def begin(context: AssetExecutionContext, warehouse: Warehouse) -> None:
    """Take the run lease, then drop what ended runs left behind (once per lease taken).

    Opening the warehouse here, first, turns a lock that another program holds into the
    engine's clear error. A run that someone launched fails on it at once, naming the holder;
    a run that automation launched steps back and tries again later (``retry_delay``): nobody
    is there to close the other program, and the lock is gone only when they have.
    """
    run_id = context.op_execution_context.run_id
    # A later step of a run whose process holds the lease since an earlier step's clean-up has
    # nothing more to drop: no other run has written since.
    taken = warehouse.hold_for_run(run_id, context.log.info)
    dropped: list[str] = []
    forgotten: dict[str, list[str]] = {}
    try:
        with warehouse.session() as session:
            if taken:
                dropped, forgotten = collect_garbage(session, ended_runs(context), run_id)
    except WarehouseLockedError as locked:
        if context.run.tags.get(TRIGGER_TAG) != AUTOMATED:
            raise
        delay = retry_delay(context.retry_number + 1)
        context.log.warning(f"{locked} Trying again in {delay.total_seconds() / 60:g} minutes.")
        raise RetryRequested(max_retries=LOCK_RETRIES, seconds_to_wait=delay.total_seconds()) from locked
    if dropped:
        context.log.info(
            f"Dropped {len(dropped)} version(s) that no published name reads: {', '.join(dropped)}."
        )
    for ended_run, names in forgotten.items():
        context.log.info(f"Run {ended_run[:8]} ended without publishing {', '.join(names)}.")
        restore_catalog(context, names, failed_run_id=ended_run)


def reset_workspace(
    session: Session, run_id: str | None, rebuilt: Collection[str] = (), state: State | None = None
) -> dict[str, str]:
    """Point every name dbt reads at its published version (or ``run_id``'s pending one).

    What dbt built in the workspace and nobody published (a failed run's tables) is dropped,
    so a model the next run does not rebuild is read as published, never as a failed run left
    it. The names dbt rebuilds in this run (``rebuilt``) are left as they are: dbt replaces
    whatever it finds there, so a pointer would be a statement for nothing (on Spark, a
    metastore round trip, and one more for dbt's drop of it). Returns the pointers.
    ``state`` is the warehouse's state if the caller has read it since it took the run lease.
    """
    pointers = {
        name: version
        for name, version in workspace_pointers(state or session.read_state(), run_id or "").items()
        if name not in rebuilt
    }
    objects = session.build_objects()
    session.drop(
        {
            name: kind
            for name, kind in objects.items()
            if parse_version(name) is None and name not in pointers and name not in rebuilt
        }
    )
    session.point(pointers, objects)
    return pointers


def unbuilt_paths(graph, selected: set, loaded: set) -> dict:
    """Raw asset -> the models between it and a selected model that the selection leaves out.

    A run that loads a raw table and rebuilds a model reading it must rebuild every model in
    between, or the model would read the old data through them; and only then does Dagster
    order the steps (the dbt step after the raw step).
    """
    gaps = {}
    for key in loaded:
        below = _walk(graph, {key}, "child_keys")
        readers = below & selected
        if readers:
            between = below & _walk(graph, readers, "parent_keys")
            if missing := between - selected:
                gaps[key] = missing
    return gaps


def refuse_unordered_selection(context: AssetExecutionContext, loaders: set) -> None:
    """Fail before anything runs when the run loads raw tables (``loaders``: the raw assets)
    that models it rebuilds read through models it does not: every step of the run asks, so the
    order of steps never matters."""
    graph = context.job_def.asset_layer.asset_graph
    selected = set(context.job_def.asset_layer.selected_asset_keys)
    if gaps := unbuilt_paths(graph, selected, loaders & selected):
        raise Failure(description=_gaps_message(gaps))


def _gaps_message(gaps: dict) -> str:
    lines = [
        f"- {raw.to_user_string()} is loaded, and models that read it are rebuilt, but "
        f"{', '.join(sorted(key.to_user_string() for key in missing))} between them "
        f"{'is' if len(missing) == 1 else 'are'} not selected."
        for raw, missing in sorted(gaps.items())
    ]
    also = sorted({key.to_user_string() for missing in gaps.values() for key in missing})
    return (
        "This selection cannot keep the published tables consistent, so nothing was run:\n"
        + "\n".join(lines)
        + f"\nSelect {', '.join(also)} too (or Materialize all), then materialize again."
    )


def readers_in_run(graph, selected: set, loaded: set) -> set:
    """The selected assets that read, directly or not, any of ``loaded``."""
    return _walk(graph, set(loaded), "child_keys") & selected


def _walk(graph, start: set, direction: str) -> set:
    """Every asset reached from ``start`` (excluded) along ``direction``."""
    seen: set = set()
    frontier = set(start)
    while frontier:
        frontier = {
            other for key in frontier if graph.has(key) for other in getattr(graph.get(key), direction)
        } - seen
        seen |= frontier
    return seen - set(start)


def failure_summary(results, what: str) -> str:
    """The run's failure message: which checks failed on which asset, and what was kept."""
    lines = [
        f"- {result.asset_key.to_user_string()}: {result.check_name}. {result.description or ''}".rstrip()
        for result in results
    ]
    return (
        f"{what} failed, so nothing was published: the tables users read and the chart are "
        "unchanged.\n" + "\n".join(lines)
    )
