"""What tests ask of the UI that `make run` serves: launch a job, find its run worker, read its log.

Starting and stopping the server is tests/browser.py's `dagster_dev`.
"""

import re

import psutil

from dagster_project.warehouse import LEASE_TAKEN
from tests.browser import DagsterDev
from tests.helpers import UIGraphQL
from tests.processes import run_workers_under

LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""
EVENTS_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { eventConnection { events {
    __typename ... on MessageEvent { message timestamp } } } } }
}
"""
STEP_ENDS = ("ExecutionStepSuccessEvent", "ExecutionStepFailureEvent")
RUN_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run { status eventConnection { events { ... on MessageEvent { message } } } }
  }
}
"""
STEP_FAILURES_QUERY = """
query ($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { eventConnection { events {
    ... on ExecutionStepFailureEvent { stepKey error { message } failureMetadata { description } }
  } } } }
}
"""
# A warning from Python (`SupersessionWarning: …`), Dagster's logger (`- WARNING -`) or dg.
WARNING = re.compile(r"warn", re.IGNORECASE)
# The run-retry daemon's note on the first start of a new Dagster home (one per event type it
# watches): it starts its cursors at the newest event, so runs from before it were never retried.
# Documented in the README's troubleshooting table; any other warning still fails the test.
FIRST_START = re.compile(
    r"EventLogConsumerDaemon - .*No cursor for event type \w+\.\w+, ignoring older events"
)


def launch_job(server: DagsterDev, job_name: str) -> str:
    """Launch a job as the UI's Launchpad does; return the run id."""
    params = {"selector": {**UIGraphQL.repository, "jobName": job_name}}
    launched = server.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def launch_assets(server: DagsterDev, names: list[str]) -> str:
    """Launch Materialize selected on the assets ``names``, as the UI's asset graph does; return the run id."""
    params = {
        "selector": {
            **UIGraphQL.repository,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": [name]} for name in names],
        }
    }
    launched = server.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def step_failures(server: DagsterDev, run_id: str) -> list[str]:
    """What the run page shows of each failed step: its step, and its failure's description."""
    events = server.graphql(STEP_FAILURES_QUERY, {"runId": run_id})["runOrError"]["eventConnection"]["events"]
    return [
        f"{event['stepKey']}: {(event.get('failureMetadata') or {}).get('description') or event['error']['message']}"
        for event in events
        if event.get("stepKey")
    ]


def run_status(server: DagsterDev, run_id: str) -> str:
    return server.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]["status"]


def run_messages(server: DagsterDev, run_id: str) -> list[str]:
    events = server.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]["eventConnection"]["events"]
    return [event["message"] for event in events if event.get("message")]


def run_events(server: DagsterDev, run_id: str) -> list[tuple[float, str, str]]:
    """The run's event log, as the run's page lists it: (timestamp, event type, message)."""
    data = server.graphql(EVENTS_QUERY, {"runId": run_id})
    events = data["runOrError"]["eventConnection"]["events"]
    return [(float(event["timestamp"]) / 1000, event["__typename"], event["message"]) for event in events]


def warehouse_span(server: DagsterDev, run_id: str) -> tuple[float, float]:
    """When the run took the warehouse, and when its last step ended.

    Runs launched together may all start their first step at once; the later ones then wait
    inside it until the run before them ends, so a span starts when the run says it holds the
    warehouse.
    """
    log = run_events(server, run_id)
    (taken,) = [at for at, _, message in log if message.startswith(LEASE_TAKEN)]
    return taken, max(at for at, kind, _ in log if kind in STEP_ENDS)


def run_workers(server: DagsterDev) -> list[psutil.Process]:
    """The processes executing the server's runs (tests/processes.py)."""
    return run_workers_under(psutil.Process(server.process.pid))


def warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if WARNING.search(line) and not FIRST_START.search(line)]
