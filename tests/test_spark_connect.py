"""`make spark` and `make spark-stop`: a Spark Connect server on loopback that keeps its state in
one folder, refuses clearly when it cannot start, and stops only what it started."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from dagster_project.serve import spark_connect
from dagster_project.serve.services import PidFile, free_port, port_open
from dagster_project.serve.spark_connect import SparkConnectServer, SparkServerError
from dagster_project.settings import REPO_ROOT
from tests.browser import wait_for

# A bound for a busy machine, not an expectation: the server stops in about 3 s here.
STOP_TIMEOUT = 60


def listening_addresses(server: SparkConnectServer) -> set[str]:
    process = server.running()
    assert process is not None
    return {
        connection.laddr.ip
        for member in (process, *process.children(recursive=True))
        for connection in member.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (ip.ipv4_mapped or ip).is_loopback


@pytest.mark.spark
def test_server_listens_on_loopback_only_and_keeps_tables_in_its_folder(spark_server, spark_connect):
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(spark_connect).create()
    try:
        session.sql("create database if not exists server_folder_probe")
        session.sql("create table server_folder_probe.answer using parquet as select 42 as answer")
        assert session.table("server_folder_probe.answer").collect()[0].answer == 42
        session.sql("drop database server_folder_probe cascade")
    finally:
        session.stop()

    addresses = listening_addresses(spark_server)
    assert addresses and all(is_loopback(address) for address in addresses), addresses
    assert (spark_server.state_dir / "metastore_db").is_dir()
    assert (spark_server.state_dir / "warehouse").is_dir()


def test_start_refuses_a_taken_port_and_names_it(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SparkServerError, match=rf"Port {port} on 127.0.0.1 is taken.*SPARK_PORT"):
            SparkConnectServer(tmp_path, port).start()
    assert SparkConnectServer(tmp_path, port).running() is None


# Listens on the port, holds every connection without a word of gRPC, and exits after 3 s: a
# JVM that died after opening its port, before it answered a query.
DYING_SERVER = """
import socket, sys, time
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
listener.settimeout(0.2)
held, end = [], time.monotonic() + 3
while time.monotonic() < end:
    try:
        held.append(listener.accept()[0])
    except TimeoutError:
        pass
sys.exit(3)
"""


def test_a_server_that_dies_before_answering_fails_the_start_at_once_and_says_so(tmp_path: Path):
    server = SparkConnectServer(tmp_path, free_port())
    dying = subprocess.Popen([sys.executable, "-c", DYING_SERVER, str(server.port)])
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            server.wait_until_answering(dying)
        except BaseException as error:
            raised.append(error)

    # pyspark alone would retry the dead server for about 20 minutes: the wait runs in a thread,
    # so that this test reports a hang at once instead of at the suite's time limit.
    waiting = threading.Thread(target=wait, daemon=True)
    try:
        waiting.start()
        waiting.join(timeout=STOP_TIMEOUT)
    finally:
        dying.kill()
        dying.wait()
    assert not waiting.is_alive(), f"still waiting {STOP_TIMEOUT} s after the server died"
    (error,) = raised
    assert isinstance(error, SparkServerError), repr(error)
    assert "The Spark Connect server exited with code 3." in str(error)
    # The query that never got its answer went with the server: no process of it retries on,
    # and no thread of this one holds pyspark's session lock (a later session would wait on it).
    assert not [child for child in psutil.Process().children() if "answer_probe" in " ".join(child.cmdline())]
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("spark-connect")]


def test_start_without_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SparkServerError, match=r"Spark needs Java 17 or newer and found none on PATH"):
        SparkConnectServer(tmp_path, free_port()).start()


def test_a_class_archive_recording_whose_jvm_never_exits_is_given_up_and_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Once, with a core kept busy, the JVM recording the archive never exited after its SIGTERM,
    and the session's Spark tests all failed on their set-up's timeout. The archive only makes
    starts faster: a recording that does not end is killed, and nothing half-written is kept."""
    started: list[subprocess.Popen] = []

    def launch(self: SparkConnectServer) -> subprocess.Popen:
        # A JVM that ignores SIGTERM, in a process group of its own as the server's is; returned
        # once it ignores it, as the real launch returns once the server answers.
        ready = tmp_path / "ignoring-sigterm"
        process = subprocess.Popen(
            ["sh", "-c", f"trap '' TERM; touch '{ready}'; while :; do sleep 1; done"], start_new_session=True
        )
        self.pid_file.write(psutil.Process(process.pid))
        started.append(process)
        wait_for("the stand-in JVM to start", ready.exists, STOP_TIMEOUT)
        return process

    monkeypatch.setattr(SparkConnectServer, "launch", launch)
    monkeypatch.setattr(spark_connect, "warm_up", lambda url, folder: None)
    monkeypatch.setattr(spark_connect, "ARCHIVE_TIMEOUT", 1)
    monkeypatch.setattr(spark_connect, "STOP_GRACE", 1)
    archive = tmp_path / "archives" / "classes.jsa"

    assert spark_connect.record_class_archive(archive) == "the JVM recording it did not exit within 1 s"

    (process,) = started
    assert process.poll() is not None, "the recording's JVM was left running"
    assert not archive.exists()
    assert list(archive.parent.glob("*.recording")) == []


def test_a_start_whose_archive_was_not_recorded_serves_without_one_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(spark_connect, "check_java", lambda: "17")
    monkeypatch.setattr(spark_connect, "class_archive_path", lambda java_version: tmp_path / "classes.jsa")
    monkeypatch.setattr(
        spark_connect, "record_class_archive", lambda archive: "the JVM recording it exited with status 1"
    )
    launched: list[Path | None] = []
    monkeypatch.setattr(SparkConnectServer, "launch", lambda self: launched.append(self.class_archive))
    said: list[str] = []

    SparkConnectServer(tmp_path / "state", free_port()).start(say=said.append)

    assert launched == [None]
    assert said[-1] == (
        "Spark's class archive was not recorded: the JVM recording it exited with status 1. This "
        "server starts without one (slower); the next start records it again."
    )


def test_make_records_the_archive_once_as_it_installs_and_the_first_start_maps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    archive = tmp_path / "classes.jsa"
    monkeypatch.setattr(spark_connect, "check_java", lambda: "17")
    monkeypatch.setattr(spark_connect, "class_archive_path", lambda java_version: archive)
    recorded: list[Path] = []

    def record(path: Path) -> None:
        recorded.append(path)
        path.write_bytes(b"classes")

    monkeypatch.setattr(spark_connect, "record_class_archive", record)

    # `make`'s install step, twice: the second finds the archive.
    assert spark_connect.main(["record"]) == 0
    assert spark_connect.main(["record"]) == 0

    assert recorded == [archive]
    assert capsys.readouterr().out.startswith(
        "Recording Spark's class archive, once for this Java and pyspark"
    )
    launched: list[Path | None] = []
    monkeypatch.setattr(SparkConnectServer, "launch", lambda self: launched.append(self.class_archive))
    said: list[str] = []
    SparkConnectServer(tmp_path / "state", free_port()).start(say=said.append)
    # `make spark` maps it at once, with nothing to record and nothing to say.
    assert (launched, said, recorded) == ([archive], [], [archive])


def test_make_without_java_stops_at_the_archive_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    def no_java() -> str:
        raise SparkServerError("Spark needs Java 17 or newer: apt-get install openjdk-17-jre-headless")

    monkeypatch.setattr(spark_connect, "check_java", no_java)
    assert spark_connect.main(["record"]) == 2
    assert (
        capsys.readouterr().err == "Spark needs Java 17 or newer: apt-get install openjdk-17-jre-headless\n"
    )


@pytest.mark.parametrize(
    ("on_sigterm", "reason"),
    [
        ('echo half > "$RECORDING"; exit 1', "the JVM recording it exited with status 1"),
        ("exit 0", "the JVM recording it exited without writing it"),
    ],
)
def test_a_class_archive_recording_whose_jvm_fails_keeps_nothing_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_sigterm: str, reason: str
):
    """A JVM that fails as it exits may leave half an archive, which every later start would map:
    it is not kept, and the start is told why there is none."""

    def launch(self: SparkConnectServer) -> subprocess.Popen:
        ready = tmp_path / "ready"
        process = subprocess.Popen(
            ["sh", "-c", f"trap '{on_sigterm}' TERM; touch '{ready}'; while :; do sleep 1; done"],
            env={**os.environ, "RECORDING": str(self.record_archive)},
            start_new_session=True,
        )
        self.pid_file.write(psutil.Process(process.pid))
        wait_for("the stand-in JVM to start", ready.exists, STOP_TIMEOUT)
        return process

    monkeypatch.setattr(SparkConnectServer, "launch", launch)
    monkeypatch.setattr(spark_connect, "warm_up", lambda url, folder: None)
    archive = tmp_path / "archives" / "classes.jsa"

    assert spark_connect.record_class_archive(archive) == reason

    assert not archive.exists()
    assert list(archive.parent.glob("*.recording")) == []


def test_stop_leaves_alone_a_process_that_reused_the_recorded_pid(tmp_path: Path):
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        server = SparkConnectServer(tmp_path, free_port())
        # The PID file of a server long gone, whose PID the bystander now holds.
        started = psutil.Process(bystander.pid).create_time()
        server.pid_file.path.write_text(f"{bystander.pid} {started - 3600}\n")
        assert server.stop() is False
        assert bystander.poll() is None
        assert not server.pid_file.path.exists()
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.spark
def test_make_spark_serves_until_make_spark_stop(tmp_path: Path):
    """The two commands as `make spark` and `make spark-stop` run them, from two terminals."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "dagster_project.serve.spark_connect",
        "--dir",
        str(tmp_path),
        "--port",
        str(port),
    ]
    serving = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # Read up to the line that says it serves (or to the end, if it exited): never past it,
        # as the server goes on running and its output never ends.
        said = []
        for line in serving.stdout:
            said.append(line)
            if "Spark Connect serves" in line:
                break
        assert said and f"Spark Connect serves sc://127.0.0.1:{port}" in said[-1], "".join(said)
        # The one line that may come first says why this start takes longer (a fresh clone's first).
        assert all(line.startswith("Recording Spark's class archive") for line in said[:-1]), "".join(said)
        assert port_open(port)
        recorded = PidFile(tmp_path / "spark-connect.pid").process()
        assert recorded is not None

        # A second `make spark` leaves the first one serving, and says so.
        again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=STOP_TIMEOUT)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"already runs (PID {recorded.pid}) on sc://127.0.0.1:{port}; it keeps running" in again.stdout
        assert port_open(port) and serving.poll() is None
        assert PidFile(tmp_path / "spark-connect.pid").process() == recorded
        # The JVM maps its classes from the archive recorded once for this Java and pyspark, and
        # accepted it (a rejected archive is a warning in the output, and a start twice as long).
        (archive,) = [option for option in recorded.cmdline() if option.startswith("-XX:SharedArchiveFile=")]
        assert Path(archive.split("=", 1)[1]).is_file()
        output = (tmp_path / "logs" / "spark-connect.out").read_text(encoding="utf-8")
        assert "Unable to use shared archive" not in output, output
        # Spark's log is the project's rolling one, without a line per request.
        log = (tmp_path / "logs" / "spark-connect.log").read_text(encoding="utf-8")
        assert "Spark Connect server started at: 127.0.0.1" in log
        assert "SessionHolder" not in log

        stopped = subprocess.run(
            [*command, "stop"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=STOP_TIMEOUT
        )
        assert stopped.returncode == 0, stopped.stderr
        assert f"Stopped the Spark Connect server of {tmp_path}." in stopped.stdout
        assert serving.wait(timeout=STOP_TIMEOUT) == 0
        assert "The Spark Connect server stopped." in serving.stdout.read()
        wait_for("the port to close", lambda: not port_open(port), STOP_TIMEOUT)
        assert not psutil.pid_exists(recorded.pid) or recorded.status() == psutil.STATUS_ZOMBIE
    finally:
        if serving.poll() is None:
            serving.terminate()
            serving.wait(timeout=STOP_TIMEOUT)
        SparkConnectServer(tmp_path, port).stop()


def test_importing_the_server_module_does_not_import_pyspark():
    code = "import sys, dagster_project.serve.spark_connect; print('pyspark' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120
    )
    assert completed.stdout.strip() == "False", completed.stderr
