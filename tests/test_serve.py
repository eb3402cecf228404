"""`make serve`: Dagster's production shape against a real PostgreSQL, and what users see when a
piece of it fails.

One deployment (PostgreSQL, code server, daemon, webserver, each a process of its own) serves
the module: starting it costs the most. The daemon and the code server each run in a PID
namespace of its own, as containers run them: no service can see another's processes. Runs are
launched through the webserver's GraphQL as the UI's **Materialize all** launches them. Each test
leaves every service running.

A Materialize all run costs 20 to 40 s on this 2-core machine, so the runs that fail on purpose
and the runs after them happen in two scenarios, each a module fixture that several tests read
(`runs_behind_a_killed_one`, `crashes`). `make serve`'s supervision is tested against stand-in
processes, and `make serve` itself, as typed, once, on the module's PostgreSQL.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from dagster_project.serve.__main__ import supervise
from dagster_project.serve.services import (
    MAX_RESTARTS,
    SERVICES,
    Deployment,
    PidFile,
    RestartBudget,
    free_port,
    stop_group,
    stop_recorded,
)
from dagster_project.settings import REPO_ROOT, PostgresServer, SettingsError, load_serve_settings
from dagster_project.warehouse import LEASE_TAKEN
from tests.browser import TERMINAL_RUN_STATUSES, DagsterDev, run_statuses, wait_for, wait_for_run_to_end
from tests.dagster_dev import LAUNCH_RUN, run_events, run_messages, run_status, warehouse_span
from tests.helpers import INSTANCE_POOLS, ProjectEnv, UIGraphQL, make_project_env
from tests.processes import run_workers_under
from tests.serving import serve_dir, serving

ARTIFACTS = REPO_ROOT / "test-artifacts" / "serve"
# Bounds on a busy machine, not expectations: a run starts in 5 to 10 s and takes 15 to 30 s here.
START_TIMEOUT = 120
RUN_TIMEOUT = 300
# Run monitoring checks every 10 s; a dead run is failed within 10 to 20 s of its death.
RECOVERY_TIMEOUT = 180
# The promise for a run whose worker was killed: failed within about 20 s, so 30 s on a busy machine.
KILLED_RUN_FAILED_WITHIN = 30

ASSETS_QUERY = """
{ assetNodes { assetKey { path } isExecutable
    assetChecksOrError { ... on AssetChecks { checks { name assetKey { path } } } } } }
"""
SERVER_ID_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    locationOrLoadError { ... on RepositoryLocation { serverId } } } } } }
"""
# A container's view: PIDs numbered anew, the other services' processes out of sight. Root may
# make the namespace; anyone else makes a user namespace to do so. --kill-child: the namespace
# ends with its leader, as a container does.
OWN_PID_NAMESPACE = (
    "unshare",
    *(() if os.geteuid() == 0 else ("--user", "--map-root-user")),
    *("--pid", "--fork", "--mount-proc", "--kill-child"),
)
CONTAINED = ("code-server", "daemon")
# What a run's page shows when the run failed, or when run monitoring thought its worker dead.
RUN_FAILED = "RunFailureEvent"
WORKER_DOUBTED = "Detected run worker status"


class ContainedDeployment(Deployment):
    """`make serve`'s services, with the daemon and the code server each in a PID namespace of
    its own."""

    def command(self, name: str) -> list[str]:
        command = super().command(name)
        return [*OWN_PID_NAMESPACE, *command] if name in CONTAINED else command


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> ProjectEnv:
    return make_project_env(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def served(project: ProjectEnv) -> Iterator[Deployment]:
    # On an instance where a user has limited Dagster's pools at op granularity.
    pools = INSTANCE_POOLS["op granularity, limit 1"]
    with serving(project, ARTIFACTS, ContainedDeployment, instance_settings=pools) as deployment:
        yield deployment


@pytest.fixture
def deployment(served: Deployment) -> Deployment:
    return running(served)


def running(served: Deployment) -> Deployment:
    """The module's deployment, with every service running (a failed test may have left one down)."""
    for name in served.services:
        process = served.processes.get(name)
        if process is None or process.poll() is not None:
            served.stop(name)  # whatever is left of its process group
            served.start(name)
    wait_for("the code location to load", ui(served).code_location_loaded, START_TIMEOUT)
    return served


def ui(deployment: Deployment) -> DagsterDev:
    """The webserver, as the UI talks to it."""
    return DagsterDev(deployment.processes["webserver"], deployment.url, deployment.log("webserver"))


def code_server_id(deployment: Deployment) -> str | None:
    """The id of the code server the UI has loaded (each start of a code server makes a new one)."""
    data = ui(deployment).graphql(SERVER_ID_QUERY)
    (entry,) = data["workspaceOrError"]["locationEntries"]
    return (entry["locationOrLoadError"] or {}).get("serverId")


def launch_materialize_all(deployment: Deployment) -> str:
    return materialize_all(ui(deployment))


def materialize_all(server: DagsterDev) -> str:
    """Launch a run as the UI's Materialize all button does: every asset and every check."""
    nodes = wait_for("the UI to list the assets", lambda: answer(server, ASSETS_QUERY), START_TIMEOUT)[
        "assetNodes"
    ]
    # Not the raw files: Dagster runs nothing for them, and the button leaves them out too.
    nodes = [node for node in nodes if node["isExecutable"]]
    assets = [{"path": node["assetKey"]["path"]} for node in nodes]
    checks = [
        {"name": check["name"], "assetKey": {"path": check["assetKey"]["path"]}}
        for node in nodes
        for check in node["assetChecksOrError"].get("checks", [])
    ]
    selector = {**UIGraphQL.repository, "jobName": "__ASSET_JOB", "assetSelection": assets}
    params = {"selector": {**selector, "assetCheckSelection": checks}, "mode": "default"}
    launched = server.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def answer(server: DagsterDev, query: str) -> dict | None:
    """The UI's answer to a query that only reads; None while it answers HTTP 500, as it may to
    some requests for a while after PostgreSQL restarts."""
    try:
        return server.graphql(query)
    except urllib.error.HTTPError:
        return None


def holds_warehouse(deployment: Deployment, run_id: str) -> bool:
    return any(message.startswith(LEASE_TAKEN) for _, _, message in run_events(ui(deployment), run_id))


def wait_until_started(deployment: Deployment, run_id: str) -> None:
    wait_for(f"run {run_id} to start", lambda: run_status(ui(deployment), run_id) == "STARTED", START_TIMEOUT)


def ended_status(deployment: Deployment, run_id: str) -> str | None:
    """The run's final status; None while it runs, or while the UI cannot read PostgreSQL yet
    (the first requests after PostgreSQL restarts may fail with HTTP 500)."""
    try:
        status = run_status(ui(deployment), run_id)
    except urllib.error.HTTPError:
        return None
    return status if status in TERMINAL_RUN_STATUSES else None


def run_workers(deployment: Deployment) -> list[psutil.Process]:
    """The processes executing the code server's runs (tests/processes.py)."""
    return run_workers_under(psutil.Process(deployment.processes["code-server"].pid))


def pid_namespace(process: psutil.Process) -> str:
    return os.readlink(f"/proc/{process.pid}/ns/pid")


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    # gRPC listens on a dual-stack socket: 127.0.0.1 shows as ::ffff:127.0.0.1.
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def recorded_runs(deployment: Deployment) -> set[str]:
    """The run ids PostgreSQL holds, read with psycopg2 rather than through Dagster."""
    import psycopg2

    server = deployment.postgres
    connection = psycopg2.connect(
        host=server.host, port=server.port, user=server.user, password=server.password, dbname=server.database
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("select run_id from runs")
            return {run_id for (run_id,) in cursor.fetchall()}
    finally:
        connection.close()


def listening_sockets(process: psutil.Process) -> list:
    """The process's listening sockets; none for a short-lived child that exited meanwhile."""
    try:
        return [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.NoSuchProcess:
        return []


def test_every_service_is_a_process_of_its_own_and_listens_on_loopback_only(deployment: Deployment):
    pids = {name: deployment.processes[name].pid for name in deployment.services}
    assert len(set(pids.values())) == len(deployment.services)
    listening = {
        (name, connection.laddr.ip)
        for name in deployment.services
        for process in [psutil.Process(pids[name]), *psutil.Process(pids[name]).children(recursive=True)]
        for connection in listening_sockets(process)
    }
    assert {name for name, _ in listening} == set(deployment.services) - {"daemon"}
    assert [(name, ip) for name, ip in listening if not is_loopback(ip)] == []


def test_the_daemon_and_the_code_server_run_in_pid_namespaces_of_their_own(deployment: Deployment):
    def namespace(name: str) -> str:
        (leader,) = psutil.Process(deployment.processes[name].pid).children()  # unshare's child
        return pid_namespace(leader)

    namespaces = {namespace(name) for name in CONTAINED} | {pid_namespace(psutil.Process())}
    assert len(namespaces) == len(CONTAINED) + 1


@dataclass(frozen=True)
class RunsBehindAKilledOne:
    """A Materialize all run whose worker was killed with SIGKILL, and two launched together at once behind it."""

    killed: str
    killed_pid: int
    # From the kill to the moment the UI showed the run failed.
    failed_after: float
    behind: list[str]
    statuses: list[str]


@pytest.fixture(scope="module")
def runs_behind_a_killed_one(served: Deployment) -> RunsBehindAKilledOne:
    """Shared by the tests that read it: each Materialize all run costs 20 to 40 s here."""
    deployment = running(served)
    killed = launch_materialize_all(deployment)
    wait_until_started(deployment, killed)
    (worker,) = wait_for("the run worker process", lambda: run_workers(deployment), START_TIMEOUT)

    worker.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    # Launched at once, while the killed run still shows as started: the lease went with its
    # process, so the first takes it and the second waits for the first.
    behind = [launch_materialize_all(deployment), launch_materialize_all(deployment)]

    wait_for(f"run {killed} to end", lambda: ended_status(deployment, killed), RECOVERY_TIMEOUT)
    failed_after = time.monotonic() - killed_at
    statuses = [wait_for_run_to_end(ui(deployment), run, RECOVERY_TIMEOUT + RUN_TIMEOUT) for run in behind]
    return RunsBehindAKilledOne(killed, worker.pid, failed_after, behind, statuses)


def test_two_materialize_all_runs_from_the_ui_both_succeed_and_never_use_duckdb_together(
    runs_behind_a_killed_one: RunsBehindAKilledOne, served: Deployment, project: ProjectEnv
):
    runs = runs_behind_a_killed_one.behind

    assert runs_behind_a_killed_one.statuses == ["SUCCESS", "SUCCESS"]
    # Run monitoring, in another PID namespace than the runs, never took a live run for dead.
    doubts = [
        (run, kind, message)
        for run in runs
        for _, kind, message in run_events(ui(served), run)
        if kind == RUN_FAILED or WORKER_DOUBTED in message
    ]
    assert doubts == []
    first, second = sorted(warehouse_span(ui(served), run) for run in runs)
    assert first[1] <= second[0], f"the runs used DuckDB at the same time: {first} and {second}"
    assert set(runs) <= recorded_runs(served)
    assert project.query("select count(*), sum(number_of_orders) from customers") == [(100, 99)]


def test_a_run_worker_killed_with_sigkill_is_failed_and_the_runs_behind_it_succeed_unattended(
    runs_behind_a_killed_one: RunsBehindAKilledOne, served: Deployment
):
    killed = runs_behind_a_killed_one.killed

    assert run_status(ui(served), killed) == "FAILURE"
    assert runs_behind_a_killed_one.failed_after <= KILLED_RUN_FAILED_WITHIN
    assert runs_behind_a_killed_one.statuses == ["SUCCESS", "SUCCESS"]
    said = "\n".join(run_messages(ui(served), killed))
    pid = runs_behind_a_killed_one.killed_pid
    assert re.search(
        rf"terminated by signal 9 \(SIGKILL\)|The run's process \(PID {pid}\) (is gone|has exited)", said
    ), said


@dataclass(frozen=True)
class Crashes:
    """Each service killed with SIGKILL in turn, and started again as `make serve` starts it: the
    code server during a run, then the webserver and the daemon; PostgreSQL during another run,
    kept down until that run's process gave up; then one more run."""

    code_server_cut: str
    old_code_server: str | None
    new_code_server: str | None
    postgresql_cut: str | None
    published_before: dict[str, list[tuple]]
    published_once_it_gave_up: dict[str, list[tuple]] | None
    exits: list[tuple[str, int]]
    history: dict[str, str]
    listed_after: dict[str, str]
    next_run_status: str


@pytest.fixture(scope="module")
def crashes(served: Deployment, project: ProjectEnv) -> Crashes:
    """Shared by the tests that read it: the runs and restarts cost about 3 minutes here."""
    deployment = running(served)
    exits = []

    def kill(name: str, whole_group: bool = False) -> None:
        if whole_group:  # as a container's death would: the service and all it started, at once
            os.killpg(deployment.pid_file(name).read()[0], signal.SIGKILL)
        else:
            deployment.pid_file(name).process().kill()
        exits.append(wait_for(f"the {name} to exit", deployment.exited, START_TIMEOUT))

    code_server_cut = launch_materialize_all(deployment)
    wait_until_started(deployment, code_server_cut)
    old_code_server = code_server_id(deployment)
    kill("code-server", whole_group=True)
    deployment.restart("code-server")  # what `make serve` does once it sees a service exit
    # While run monitoring has yet to fail the run, the webserver and the daemon, in turn.
    for name in ("webserver", "daemon"):
        kill(name)
        deployment.restart(name)
    # The UI notices by itself (the location shows an error, then loads again): no Reload click.
    new_code_server = wait_for(
        "the UI to load the restarted code server",
        lambda: (loaded := code_server_id(deployment)) not in (old_code_server, None) and loaded,
        START_TIMEOUT,
    )
    wait_for(
        f"run {code_server_cut} to end", lambda: ended_status(deployment, code_server_cut), RECOVERY_TIMEOUT
    )

    history = run_statuses(ui(deployment))
    published_before = project.published_tables()
    postgresql_cut = published_once_it_gave_up = None
    if deployment.local:
        postgresql_cut = launch_materialize_all(deployment)
        wait_for(
            f"run {postgresql_cut} to hold the warehouse",
            lambda: holds_warehouse(deployment, postgresql_cut),
            START_TIMEOUT,
        )
        kill("postgres", whole_group=True)
        # Kept down until the run gives up: it can record nothing more, and its process ends
        # in about a minute. `make serve` would start PostgreSQL again within a second.
        wait_for("the run's process to end", lambda: not run_workers(deployment), RECOVERY_TIMEOUT)
        published_once_it_gave_up = project.published_tables()
        deployment.restart("postgres")

    listed_after = wait_for("the UI to list the runs", lambda: listed_runs(deployment), START_TIMEOUT)
    if postgresql_cut:
        # Until then the UI may still answer HTTP 500 to some requests after PostgreSQL's restart.
        wait_for(
            f"run {postgresql_cut} to end", lambda: ended_status(deployment, postgresql_cut), RECOVERY_TIMEOUT
        )
    wait_for("the code location to load", ui(deployment).code_location_loaded, START_TIMEOUT)
    next_run = launch_materialize_all(deployment)
    next_run_status = wait_for_run_to_end(ui(deployment), next_run, RUN_TIMEOUT)
    return Crashes(
        code_server_cut,
        old_code_server,
        new_code_server,
        postgresql_cut,
        published_before,
        published_once_it_gave_up,
        exits,
        history,
        listed_after,
        next_run_status,
    )


def listed_runs(deployment: Deployment) -> dict[str, str] | None:
    """The runs the UI lists; None while it answers HTTP 500 after PostgreSQL's restart."""
    try:
        return run_statuses(ui(deployment))
    except urllib.error.HTTPError:
        return None


def test_a_run_whose_code_server_is_killed_fails_saying_so_and_the_next_succeeds_once_it_is_back(
    crashes: Crashes, served: Deployment
):
    assert crashes.new_code_server not in (crashes.old_code_server, None)
    assert run_status(ui(served), crashes.code_server_cut) == "FAILURE"
    said = "\n".join(run_messages(ui(served), crashes.code_server_cut))
    assert re.search(r"The run's process \(PID \d+\) (is gone|has exited)", said), said
    assert f"It ran inside the code server at 127.0.0.1:{served.code_server_port}" in said
    assert crashes.next_run_status == "SUCCESS"


def test_a_run_that_loses_postgresql_fails_publishes_nothing_and_the_next_succeeds_once_it_is_back(
    crashes: Crashes, served: Deployment, project: ProjectEnv
):
    if not served.local:
        pytest.skip("PostgreSQL is the server named in the environment: this test stops only its own.")
    assert crashes.published_once_it_gave_up == crashes.published_before
    assert run_status(ui(served), crashes.postgresql_cut) == "FAILURE"
    assert crashes.next_run_status == "SUCCESS"
    assert project.query("select count(*), sum(number_of_orders) from customers") == [(100, 99)]


def test_each_service_killed_with_sigkill_is_started_again_keeping_the_history_and_serves_a_run(
    crashes: Crashes, served: Deployment
):
    """`make serve`'s supervision, which starts a service again this way, is
    test_make_serve_starts_each_service_that_exited_again_once_what_was_left_of_its_group_is_stopped."""
    assert crashes.exits == [
        (name, -signal.SIGKILL)
        for name in ("code-server", "webserver", "daemon", "postgres")
        if name in served.services
    ]
    # The run history is all there: it is in PostgreSQL.
    assert {run: crashes.listed_after.get(run) for run in crashes.history} == crashes.history
    assert crashes.next_run_status == "SUCCESS"


def test_stopping_a_service_stops_its_whole_group_even_once_its_leader_died_and_nothing_else(
    tmp_path: Path,
):
    # A code server that was killed leaves its run workers running, orphaned, in its group.
    service = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        pid_file = PidFile(tmp_path / "code-server.pid")
        pid_file.write(psutil.Process(service.pid))
        (orphan,) = wait_for("the service's child", lambda: psutil.Process(service.pid).children(), 30)
        service.kill()
        service.wait(timeout=30)

        assert stop_group(pid_file, signal.SIGTERM)

        assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
        assert bystander.poll() is None
        assert not stop_group(pid_file, signal.SIGTERM)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_postgresql_url_in_the_environment_replaces_the_local_cluster():
    settings = load_serve_settings({"DAGSTER_PG_URL": "postgresql://ops:s%40cret@db.internal:6543/runs"})

    assert settings.postgres == PostgresServer("db.internal", 6543, "ops", "s@cret", "runs")
    assert settings.webserver_host == "127.0.0.1"


def test_a_postgresql_host_without_its_password_is_refused_naming_the_variable():
    with pytest.raises(SettingsError, match="DAGSTER_PG_PASSWORD is not set"):
        load_serve_settings({"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_USER": "ops"})


class StandInDeployment(Deployment):
    """`make serve`'s services played by small processes: each starts a child in its own group and
    waits, as a code server starts run workers, and is ready at once. PostgreSQL is a server named
    in the environment, so the stand-ins are the code server, the daemon and the webserver."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.finished = threading.Event()

    def command(self, name: str) -> list[str]:
        return ["sh", "-c", "sleep 600 & wait"]

    def wait_until_ready(self, name: str) -> None:
        pass

    def exited(self) -> tuple[str, int] | None:
        if self.finished.is_set():
            raise SupervisionOver
        return super().exited()


class SupervisionOver(Exception):
    """Raised into `supervise` to end it once the test has seen what it needs."""


def test_make_serve_starts_each_service_that_exited_again_once_what_was_left_of_its_group_is_stopped(
    capsys: pytest.CaptureFixture[str],
):
    """`make serve`'s supervision (its `supervise`), one level down: each service killed in turn
    with SIGKILL, as the OOM killer would. Each real service's own restart is
    test_each_service_killed_with_sigkill_is_started_again_keeping_the_history_and_serves_a_run."""
    state = serve_dir()
    elsewhere = {"DAGSTER_PG_URL": "postgresql://ops:secret@db.internal:5432/dagster"}
    stand_ins = StandInDeployment(load_serve_settings({**elsewhere, "JAFFLE_SERVE_DIR": str(state)}))

    def supervised() -> None:
        with suppress(SupervisionOver):
            supervise(stand_ins)

    supervisor = threading.Thread(target=supervised)
    try:
        stand_ins.start_all()
        supervisor.start()
        for name in stand_ins.services:
            leader = stand_ins.pid_file(name).process()
            (left_behind,) = wait_for(f"the {name}'s child", leader.children, 30)
            leader.kill()

            def started_again(name: str = name, killed: int = leader.pid) -> psutil.Process | None:
                process = stand_ins.pid_file(name).process()
                return process if process and process.pid != killed else None

            wait_for(f"make serve to start the {name} again", started_again, 60)
            # Before it started the service again, it stopped what the killed one left running.
            assert not left_behind.is_running() or left_behind.status() == psutil.STATUS_ZOMBIE
    finally:
        stand_ins.finished.set()
        if supervisor.ident:
            supervisor.join(timeout=60)
        stand_ins.stop_all()
        shutil.rmtree(state, ignore_errors=True)

    said = capsys.readouterr()
    for name in stand_ins.services:
        assert f"The {name} exited with code -9" in said.err
        assert f"Starting the {name} again in 1 s." in said.err
        assert f"The {name} is back." in said.out


def test_make_serve_serves_the_ui_on_ui_port_and_make_stop_stops_it_and_nothing_else(
    deployment: Deployment, tmp_path: Path
):
    """`make serve UI_PORT=…` and `make stop` as a user types them, on the module's PostgreSQL
    named in the environment (a cluster of its own would cost a second deployment)."""
    state, port = serve_dir(), free_port()
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("DAGSTER_PG_", "MAKE"))},
        **make_project_env(tmp_path).variables,
        **deployment.postgres.variables,
        "JAFFLE_SERVE_DIR": str(state),
    }
    make = ["make", "-o", ".venv/.synced", "-o", "jaffle_shop/target/manifest.json"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "make-serve.log"
    with log.open("wb") as output:
        serve = subprocess.Popen(
            [*make, "serve", f"UI_PORT={port}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(serve, f"http://127.0.0.1:{port}", log)
    try:
        wait_for("make serve to serve the UI on UI_PORT", server.is_serving, START_TIMEOUT)
        wait_for("the code location to load", server.code_location_loaded, START_TIMEOUT)
        services = {name: PidFile(state / "pids" / f"{name}.pid").process() for name in SERVICES[1:]}
        assert None not in services.values(), services

        stopped = subprocess.run(
            [*make, "stop"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
        )

        assert "Stopped: serve." in stopped.stdout, stopped.stdout + stopped.stderr
        assert serve.wait(timeout=60) == 0
        assert [name for name, process in services.items() if process.is_running()] == []
        assert all(deployment.processes[name].poll() is None for name in deployment.services)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        stop_recorded(state)
        shutil.rmtree(state, ignore_errors=True)


def test_a_service_that_keeps_crashing_is_started_after_growing_delays_then_left_down():
    budget = RestartBudget()

    delays = [budget.next_delay("code-server", now=60.0 * minute) for minute in range(MAX_RESTARTS + 1)]

    assert delays == [1, 2, 4, 8, 16, None]
    # Crashes long ago no longer count, and each service has a budget of its own.
    assert budget.next_delay("code-server", now=60.0 * 60) == 1
    assert budget.next_delay("daemon", now=60.0 * 60) == 1


def test_make_serve_takes_ui_port_as_make_run_does_and_dagster_webserver_port_before_it():
    assert load_serve_settings({"UI_PORT": "3100"}).webserver_port == 3100
    assert load_serve_settings({"UI_PORT": "3100", "DAGSTER_WEBSERVER_PORT": "3200"}).webserver_port == 3200
    assert load_serve_settings({}).webserver_port == 3000
    with pytest.raises(SettingsError, match="UI_PORT='x' must be a TCP port number"):
        load_serve_settings({"UI_PORT": "x"})
