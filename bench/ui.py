"""The UI path: Materialize all launched through the webserver's GraphQL, as the UI launches it.

One `dg dev` serves every pair of a benchmark, started as `make run` starts it (tests/browser.py).
Its start, until the webserver answers with the code location loaded, is timed on its own
(issue 15's "serves the UI within 10 s"); it is not part of a click's latency. Each launch is timed from
the GraphQL call to the run's end, and the run's event log says where the time went.
"""

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.browser import DagsterDev, dagster_dev, wait_for_run_to_end
from tests.helpers import UIGraphQL

REPO_ROOT = Path(__file__).resolve().parent.parent

ASSETS_QUERY = "{ assetNodes { assetKey { path } isExecutable } }"
# What the UI's "Materialize all" sends: the implicit asset job, with every asset selected.
LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""
RUN_EVENTS = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status endTime
      eventConnection(limit: 100000) {
        events { ... on MessageEvent { eventType timestamp stepKey message } }
      }
    }
  }
}
"""


@contextmanager
def server(data_dir: Path, logs: Path) -> Iterator[tuple[DagsterDev, float]]:
    """A `dg dev` over `data_dir`, with its own DAGSTER_HOME and DuckDB file, and its start in seconds."""
    with tempfile.TemporaryDirectory(prefix="jaffle-bench-ui-") as work:
        work = Path(work)
        dagster_home = work / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {
            "JAFFLE_ENV": "dev",
            "JAFFLE_DATA_DIR": str(data_dir.resolve()),
            "DUCKDB_DATABASE": str(work / "jaffle.duckdb"),
            "DAGSTER_HOME": str(dagster_home),
            "JAFFLE_OPEN_CHART": "0",
            "JAFFLE_CHART_DIR": str(work / "charts"),
        }
        started = time.monotonic()
        with dagster_dev(env, logs / "dagster-dev.log") as dev:
            yield dev, time.monotonic() - started


def materialize_all(dev: DagsterDev) -> dict:
    """Launch Materialize all, wait for the run's end; its latency and breakdown in seconds."""
    # The executable ones, as the button takes: Dagster runs nothing for the raw files.
    assets = [node["assetKey"] for node in dev.graphql(ASSETS_QUERY)["assetNodes"] if node["isExecutable"]]
    params = {"selector": {**UIGraphQL.repository, "jobName": "__ASSET_JOB", "assetSelection": assets}}
    launched_at = time.time()
    launched = dev.graphql(LAUNCH, {"params": params})["launchPipelineExecution"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"Materialize all was not launched: {launched}")
    run_id = launched["run"]["runId"]
    status = wait_for_run_to_end(dev, run_id, timeout=3600)
    run = dev.graphql(RUN_EVENTS, {"runId": run_id})["runOrError"]
    if status != "SUCCESS":
        raise RuntimeError(f"Materialize all ended {status}: {dev.url}/runs/{run_id}")
    return {"launch_to_end_s": run["endTime"] - launched_at, **breakdown(run["eventConnection"]["events"])}


def breakdown(events: list[dict]) -> dict:
    """Queue wait, worker start, each step's duration and the publish copy, from the event log."""
    # Log lines (`context.log.info`) are events too, with no event type.
    events = [{**event, "t": int(event["timestamp"]) / 1000} for event in events if event.get("timestamp")]

    def first(event_type: str) -> float:
        return next(event["t"] for event in events if event["eventType"] == event_type)

    steps = {}
    for event in events:
        if event["eventType"] == "STEP_START":
            end = first_end(events, event["stepKey"])
            steps[event["stepKey"]] = end - event["t"]
    published = [i for i, e in enumerate(events) if e["message"].startswith("Published ")]
    return {
        "queue_s": first("RUN_STARTING") - first("RUN_ENQUEUED"),
        "worker_start_s": first("STEP_START") - first("RUN_STARTING"),
        "steps_s": steps,
        # From the dbt step's event before "Published …" (dbt's last test result) to that line:
        # copying the staged tables to the schema readers use, one transaction.
        "publish_s": events[published[0]]["t"] - events[published[0] - 1]["t"] if published else None,
    }


def first_end(events: list[dict], step: str) -> float:
    return next(
        e["t"] for e in events if e["stepKey"] == step and e["eventType"] in ("STEP_SUCCESS", "STEP_FAILURE")
    )
