"""The warm run worker (dagster_project/instance/warm_worker.py), in a real code server.

Runs are launched as the UI launches them: Materialize selected through GraphQL, then taken off
the queue and launched through the instance's run launcher, as the daemon does, into a code
server that Dagster starts. The code location is the project's definitions plus two small assets
that show which code a run executes and hold a run open until the test releases it.
A killed warm run is test_dead_runs.py's (under `make run`, where the warm worker is the default).
"""

import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from dagster import DagsterInstance

from dagster_project.instance.run_launcher import reported_pid
from tests.browser import TERMINAL_RUN_STATUSES, wait_for
from tests.dagster_dev import LAUNCH_RUN
from tests.helpers import UIGraphQL, ui_graphql_for
from tests.processes import FORK_SERVER

# Bounds on a busy machine, not expectations: a run here takes a few seconds.
RUN_TIMEOUT = 240

DEFINITIONS = textwrap.dedent(
    '''
    """The project's definitions plus two assets of the test's own."""

    import time
    from pathlib import Path

    # Found beside this file while Dagster imports it (the code location's working directory).
    import marker
    from dagster import AssetExecutionContext, Definitions, asset

    from dagster_project.definitions import defs as project_defs

    HERE = Path(__file__).parent


    @asset
    def code_marker() -> None:
        """Write down the value marker.py held when this process imported the code location."""
        (HERE / "seen.txt").write_text(marker.VALUE)


    @asset
    def held_open(context: AssetExecutionContext) -> None:
        """Wait until the test creates release-<run id> (at most 10 minutes)."""
        release = HERE / f"release-{context.run_id}"
        deadline = time.monotonic() + 600
        while not release.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{release} never appeared")
            time.sleep(0.1)


    defs = Definitions.merge(project_defs, Definitions(assets=[code_marker, held_open]))
    '''
)

TERMINATE = """
mutation ($runId: String!) { terminateRun(runId: $runId) { __typename } }
"""
STATUS = """
query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }
"""


def code_location(folder: Path) -> Path:
    folder.mkdir()
    (folder / "warm_worker_defs.py").write_text(DEFINITIONS, encoding="utf-8")
    (folder / "marker.py").write_text('VALUE = "one"\n', encoding="utf-8")
    return folder


@pytest.fixture
def ui(project_env, instance: DagsterInstance, tmp_path: Path) -> Iterator[tuple[UIGraphQL, Path]]:
    """The UI's GraphQL over a code server of the test's code location (warm worker as set)."""
    folder = code_location(tmp_path / "code")
    with ui_graphql_for(instance, "warm_worker_defs", folder) as graphql:
        yield graphql, folder


def launch(graphql: UIGraphQL, instance: DagsterInstance, asset: str) -> str:
    """Materialize selected on ``asset``, as the UI's button does, then launched as the daemon does."""
    selector = {**UIGraphQL.repository, "jobName": "__ASSET_JOB", "assetSelection": [{"path": [asset]}]}
    launched = graphql(LAUNCH_RUN, params={"selector": selector})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    instance.launch_run(run_id, graphql.workspace.create_request_context())
    return run_id


def status(graphql: UIGraphQL, run_id: str) -> str:
    return graphql(STATUS, runId=run_id)["runOrError"]["status"]


def wait_to_end(graphql: UIGraphQL, run_id: str) -> str:
    return wait_for(
        f"run {run_id} to end",
        lambda: (found := status(graphql, run_id)) in TERMINAL_RUN_STATUSES and found,
        RUN_TIMEOUT,
    )


def run_process(instance: DagsterInstance, graphql: UIGraphQL, run_id: str) -> psutil.Process:
    """The process executing ``run_id``, once it has started."""
    wait_for(f"run {run_id} to start", lambda: status(graphql, run_id) == "STARTED", RUN_TIMEOUT)
    return psutil.Process(wait_for("the run's process", lambda: reported_pid(instance, run_id), RUN_TIMEOUT))


def is_forked_from_the_warm_worker(process: psutil.Process) -> bool:
    return FORK_SERVER in " ".join(process.parent().cmdline())


def test_an_edit_to_the_code_is_seen_by_the_next_run_without_a_reload(ui, instance):
    graphql, folder = ui
    assert wait_to_end(graphql, launch(graphql, instance, "code_marker")) == "SUCCESS"
    assert (folder / "seen.txt").read_text() == "one"

    # The code server imported marker.py when it loaded the code location; nobody reloads it.
    (folder / "marker.py").write_text('VALUE = "two"\n', encoding="utf-8")

    assert wait_to_end(graphql, launch(graphql, instance, "code_marker")) == "SUCCESS"
    assert (folder / "seen.txt").read_text() == "two", "the run executed the code as it was before the edit"


def test_terminate_ends_one_run_and_not_its_neighbour(ui, instance):
    graphql, folder = ui
    stopped, neighbour = launch(graphql, instance, "held_open"), launch(graphql, instance, "held_open")
    processes = {run: run_process(instance, graphql, run) for run in (stopped, neighbour)}
    assert all(is_forked_from_the_warm_worker(process) for process in processes.values())

    assert graphql(TERMINATE, runId=stopped)["terminateRun"]["__typename"] == "TerminateRunSuccess"

    assert wait_to_end(graphql, stopped) == "CANCELED"
    assert status(graphql, neighbour) == "STARTED"
    assert processes[neighbour].is_running()
    (folder / f"release-{neighbour}").touch()
    assert wait_to_end(graphql, neighbour) == "SUCCESS"


@pytest.mark.parametrize(("setting", "forked"), [(None, True), ("1", True), ("0", False)])
def test_each_run_forks_from_the_warm_worker_unless_it_is_turned_off(
    project_env, instance, tmp_path, monkeypatch, setting, forked
):
    if setting is not None:
        monkeypatch.setenv("JAFFLE_WARM_WORKER", setting)
    folder = code_location(tmp_path / "code")
    with ui_graphql_for(instance, "warm_worker_defs", folder) as graphql:
        run_id = launch(graphql, instance, "held_open")
        process = run_process(instance, graphql, run_id)
        command = " ".join(process.cmdline())
        from_warm_worker = is_forked_from_the_warm_worker(process)
        (folder / f"release-{run_id}").touch()
        assert wait_to_end(graphql, run_id) == "SUCCESS"

    assert from_warm_worker == forked, command
    assert ("spawn_main" in command) == (not forked), command
