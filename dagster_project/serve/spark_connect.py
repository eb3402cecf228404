"""`make spark` and `make spark-stop`: a local Spark Connect server, the warehouse of JAFFLE_ENV=spark.

    python -m dagster_project.serve.spark_connect [serve|stop|record] [--port PORT] [--dir DIR]

One JVM runs Spark's driver with a `local[2]` master and serves Spark Connect (the protocol
Databricks speaks) on 127.0.0.1 only. Its tables live in DIR (`.spark/` by default): the Hive
catalog's warehouse files and metastore, Derby's log and the server's own log. The server runs
in a session of its own, recorded in a PID file with its start time, so `stop` signals only the
server it started, never a process that reused the PID.

pyspark is imported only by the functions that talk to a server (``answer_probe``, ``warm_up``),
so importing this module costs nothing.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from dagster_project.serve.services import PidFile, free_port, port_open, stop_group
from dagster_project.settings import REPO_ROOT, SPARK_TOKEN_VARIABLE
from dagster_project.system_check import java_problem, java_version_output, package_manager

DEFAULT_PORT = 15002
DEFAULT_DIR = REPO_ROOT / ".spark"
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# Spark's log settings for the server: the log rolls over by size (see the file).
LOG_SETTINGS = Path(__file__).with_name("spark_log4j2.properties")
# The JVM compiles with C1 only: at start, C2's compiler threads took most of the two cores
# this machine has, and the first query answered after 36 s instead of 23 s (docs/benchmarks.md).
# The jaffle shop's queries are small, so the code C2 would make faster runs for milliseconds.
# C1 alone also shrinks the JIT's code cache to 48 MB (the JVM's client default, against 240 MB
# with both compilers): Spark's generated code filled it within a run of the jaffle shop, and the
# next query failed with "Out of space in CodeCache for method handle intrinsic", which stopped
# the SparkContext. The code cache gets the size it has with both compilers.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m")
# Bounds for a busy machine, not expectations: docs/benchmarks.md has the measured start times.
START_TIMEOUT = 180
STOP_GRACE = 30
# Writing the class archive as the JVM exits took 50 s on this machine under load; once, with a
# core kept busy, that JVM never exited. The archive only speeds starts up: after this long the
# recording is given up and the server starts without one.
ARCHIVE_TIMEOUT = 240


class SparkServerError(RuntimeError):
    """The server cannot start, or did not answer."""


def spark_submit() -> Path:
    """pyspark's own launcher: the pip package has spark-submit but none of the start-*.sh scripts."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SparkServerError(
            "pyspark is not installed in this Python: 'make test' and 'make spark' install the `spark` extra, "
            "as does 'uv sync --inexact --extra spark'."
        )
    return Path(spec.origin).parent / "bin" / "spark-submit"


def check_java() -> str:
    """What `java -version` prints, once Java is known to be 17 or newer."""
    java = shutil.which("java")
    output = java_version_output(java) if java else ""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if problem := java_problem(java, output, sys.platform, package_manager(), is_root):
        raise SparkServerError(problem)
    return output


def class_archive_path(java_version: str) -> Path:
    """Where the server's class archive for this Java and these Spark jars lives, in the venv.

    The JVM accepts an archive only from the same Java build and the same jars (it compares
    their sizes and times); a new Java or a reinstalled pyspark gets an archive of its own.
    """
    jars = spark_submit().parent.parent / "jars"
    key = f"{java_version}\n{jars.resolve()}\n{jars.stat().st_mtime_ns}"
    return Path(sys.prefix) / "spark-class-archive" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


@dataclass(frozen=True)
class SparkConnectServer:
    """A Spark Connect server on 127.0.0.1:port whose state lives in ``state_dir``."""

    state_dir: Path
    port: int = DEFAULT_PORT
    # Class-data sharing (docs/benchmarks.md, "Server start"): the JVM maps the classes a start
    # and a first run load from ``class_archive`` instead of reading and verifying them from
    # 280 jars, which halved the time to the first query here. ``record_archive`` makes a JVM
    # write that archive when it exits.
    class_archive: Path | None = None
    record_archive: Path | None = None

    @property
    def url(self) -> str:
        """What SPARK_REMOTE holds for a client of this server."""
        return f"sc://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> PidFile:
        return PidFile(self.state_dir / "spark-connect.pid")

    @property
    def log(self) -> Path:
        """Spark's log, rolled over by size into spark-connect.log.1 … .3."""
        return self.state_dir / "logs" / "spark-connect.log"

    @property
    def output(self) -> Path:
        """What the JVM prints outside Spark's log: its warnings, and a crash before logging starts."""
        return self.state_dir / "logs" / "spark-connect.out"

    def settings(self) -> dict[str, str]:
        state = self.state_dir.resolve()
        return {
            "spark.master": "local[2]",
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            # The driver's own RPC and block manager listen too: on loopback, as the server does.
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
            # The web UI would listen on every interface on port 4040 (and 4041… for each server).
            "spark.ui.enabled": "false",
            # Tables outlive the server: the Hive catalog, with an embedded Derby metastore. Derby
            # admits one process per metastore, so each server has a folder of its own.
            "spark.sql.catalogImplementation": "hive",
            "spark.sql.warehouse.dir": str(state / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={state / 'metastore_db'};create=true"
            ),
            "spark.driver.extraJavaOptions": " ".join(
                [
                    f"-Dderby.system.home={state}",
                    f"-Dlog4j2.configurationFile={LOG_SETTINGS}",
                    f"-Djaffle.spark.log={self.log.resolve()}",
                    *JVM_OPTIONS,
                    *([f"-XX:SharedArchiveFile={self.class_archive}"] if self.class_archive else []),
                    *([f"-XX:ArchiveClassesAtExit={self.record_archive}"] if self.record_archive else []),
                ]
            ),
            "spark.local.dir": str(state / "tmp"),
            # Two cores: 200 shuffle partitions (Spark's default, sized for clusters) would make
            # each of the jaffle shop's joins run 200 tiny tasks.
            "spark.sql.shuffle.partitions": "2",
        }

    def command(self) -> list[str]:
        settings = [
            argument for key, value in self.settings().items() for argument in ("--conf", f"{key}={value}")
        ]
        # `spark-internal` tells spark-submit the main class is Spark's own, with no jar to ship.
        return [
            str(spark_submit()),
            "--class",
            SERVER_CLASS,
            "--name",
            "jaffle-spark-connect",
            *settings,
            "spark-internal",
        ]

    def running(self) -> psutil.Process | None:
        return self.pid_file.process()

    def start(self, say: Callable[[str], None] = lambda _: None) -> subprocess.Popen:
        """Start the server and return once it answers a query; raise with its log if it cannot.

        The first start with this Java and these jars records the class archive first (``say``
        tells the user why that start takes longer).
        """
        if running := self.running():
            raise SparkServerError(
                f"A Spark Connect server from {self.state_dir} already runs (PID {running.pid}) on "
                f"{self.url}; 'make spark-stop' stops it."
            )
        java_version = check_java()
        if port_open(self.port):
            raise SparkServerError(
                f"Port {self.port} on 127.0.0.1 is taken by another program, so the Spark Connect server "
                f"cannot listen there: stop that program, or choose another port (make spark SPARK_PORT=…)."
            )
        archive = ensure_class_archive(java_version, say)
        return replace(self, class_archive=archive).launch()

    def launch(self) -> subprocess.Popen:
        """Start the JVM, and return once it answers a query."""
        command = self.command()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # Truncated at each start: Spark's log rolls over by itself, this file is written only
        # before Spark's logging starts.
        with self.output.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=self.state_dir,
                env=server_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write(psutil.Process(process.pid))
        try:
            self.wait_until_answering(process)
        except BaseException:
            self.stop()
            raise
        return process

    def wait_until_answering(self, process: subprocess.Popen) -> None:
        """Return once the server answers a query (``answer_probe``, in a process of its own).

        Not in a thread of this process: pyspark retries a server that stopped answering for
        about 20 minutes, deaf to Ctrl-C, and the session's ``stop()`` then retries again while
        it holds a lock every Spark Connect session of the process needs (``SparkSession._lock``):
        one server that died while starting would stall every later session here. A process is
        killed the moment the JVM exits or the deadline passes, and takes its retries with it.
        """
        deadline = time.monotonic() + START_TIMEOUT
        with tempfile.TemporaryFile("w+", encoding="utf-8") as said:
            probe = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from dagster_project.serve.spark_connect import answer_probe; answer_probe({self.port})",
                ],
                stdin=subprocess.DEVNULL,
                stdout=said,
                stderr=subprocess.STDOUT,
            )
            try:
                while (code := probe.poll()) is None:
                    self._check_alive(process, deadline, "answer a query")
                    time.sleep(0.2)
            finally:
                if probe.poll() is None:
                    probe.kill()
                probe.wait()
            if code != 0:
                said.seek(0)
                raise SparkServerError(
                    f"The Spark Connect server on {self.url} failed its first query (the query's process "
                    f"exited with code {code}):\n"
                    f"{said.read()[-3000:].strip()}\nIts log: {self.log}"
                )

    def _check_alive(self, process: subprocess.Popen, deadline: float, what: str) -> None:
        """Raise if the JVM has exited, or if it has not managed ``what`` by ``deadline``."""
        if (code := process.poll()) is not None:
            raise SparkServerError(self.describe_exit(code))
        if time.monotonic() > deadline:
            raise SparkServerError(
                f"The Spark Connect server did not {what} within {START_TIMEOUT} s; its log: {self.log}"
            )

    def describe_exit(self, code: int) -> str:
        tails = [
            f"The end of {path}:\n{path.read_text(errors='replace')[-3000:].strip()}"
            for path in (self.output, self.log)
            if path.exists()
        ]
        return "\n".join([f"The Spark Connect server exited with code {code}.", *tails])

    def stop(self) -> bool:
        """Stop the server this folder's PID file names, and all it started; False if none ran."""
        # The recorded start time must match the leader's own: spark-submit execs the JVM, so the
        # server is the leader, and a group whose leader is gone holds only a stranger that reused
        # the PID (stop_group alone would signal it, as it started after the recorded time).
        # SIGTERM runs Spark's shutdown hooks: the metastore and the warehouse files are closed.
        stopped = self.running() is not None and stop_group(self.pid_file, signal.SIGTERM, grace=STOP_GRACE)
        self.pid_file.remove()
        return stopped


def ensure_class_archive(java_version: str, say: Callable[[str], None]) -> Path | None:
    """The class archive for this Java and these jars, recorded now if there is none yet (``say``
    tells why this takes longer); None if it could not be recorded.

    `make` records it as it installs pyspark (``record``), so `make spark` serves in seconds from
    its first start; a start with another Java records its own here.
    """
    archive = class_archive_path(java_version)
    if not archive.exists():
        say(
            "Recording Spark's class archive, once for this Java and pyspark (half a minute to two): "
            "later starts map the classes from it and serve in about half the time."
        )
        if reason := record_class_archive(archive):
            say(
                f"Spark's class archive was not recorded: {reason}. This server starts without "
                "one (slower); the next start records it again."
            )
    return archive if archive.exists() else None


def record_class_archive(archive: Path) -> str | None:
    """Write ``archive``: a server of its own, in a temporary folder, runs what the pipeline runs
    (a CSV load into parquet, a join, views, table properties, the metastore), and its JVM
    writes every class it loaded as it exits. Two starts at once record it once.

    None once the archive exists; else why it does not. A JVM that does not exit within
    ``ARCHIVE_TIMEOUT`` of its SIGTERM is stopped as any server is (``stop``, which kills what is
    left); one that exits otherwise than on that SIGTERM may have left half a file, never kept."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (archive.parent / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.exists():
            return None
        recording = archive.with_suffix(f".{os.getpid()}.recording")
        try:
            with tempfile.TemporaryDirectory(prefix="spark-class-archive-") as folder:
                server = SparkConnectServer(Path(folder), free_port(), record_archive=recording)
                process = server.launch()
                try:
                    warm_up(server.url, Path(folder))
                    # The JVM writes the archive as it exits, after Spark's shutdown hooks.
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=ARCHIVE_TIMEOUT)
                except subprocess.TimeoutExpired:
                    # stop() below kills what its SIGTERM did not end.
                    return f"the JVM recording it did not exit within {ARCHIVE_TIMEOUT} s"
                finally:
                    server.stop()
            # Only a JVM that ended by itself finished the file: a killed one may have left half.
            if process.returncode not in (0, 143, -signal.SIGTERM):
                return f"the JVM recording it exited with status {process.returncode}"
            if not recording.exists():
                return "the JVM recording it exited without writing it"
            recording.replace(archive)
            return None
        finally:
            recording.unlink(missing_ok=True)


def warm_up(url: str, folder: Path) -> None:
    from pyspark.sql import SparkSession

    csv = folder / "warm_up.csv"
    csv.write_text('id,name\n1,"a"\n2,b\n', encoding="utf-8")
    spark = SparkSession.builder.remote(url).create()
    try:
        spark.sql("create database if not exists warm_up").collect()
        (
            spark.read.schema("id string, name string")
            .options(header=True, mode="FAILFAST", quote='"', escape='"', multiLine=True)
            .csv(str(csv))
            .where("id is not null")
            .selectExpr("cast(id as int) as id", "case when name rlike '^[a-z]$' then name end as name")
            .write.saveAsTable("warm_up.people", format="parquet")
        )
        for statement in (
            "create or replace view warm_up.names as select * from warm_up.people",
            "alter table warm_up.people set tblproperties ('note' = 'x')",
            "show tblproperties warm_up.people",
            "select a.name, count(*), sum(cast(b.id as decimal(16, 2))) from warm_up.names as a "
            "left join warm_up.people as b on a.id = b.id group by 1",
            "drop database warm_up cascade",
        ):
            spark.sql(statement).collect()
    finally:
        spark.stop()


def answer_probe(port: int) -> None:
    """``wait_until_answering``'s child: wait for the port to open, then run one query.

    The gRPC port opens once the driver is up; a query proves the session side works too.
    pyspark's client takes a second or more to import: here, while the JVM starts.
    """
    from pyspark.sql import SparkSession

    while not port_open(port):
        time.sleep(0.2)
    session = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()
    # A reattachable query is released by a background thread, which could reach the server
    # after the session has closed: an ERROR in its log for a query that worked.
    session.client.disable_reattachable_execute()
    try:
        session.sql("select 1").collect()
    finally:
        session.stop()


def server_environment() -> dict[str, str]:
    """The server's environment: this one, less any client secret, which the server has no use for."""
    env = {name: value for name, value in os.environ.items() if name != SPARK_TOKEN_VARIABLE}
    # SPARK_LOCAL_IP keeps Spark from resolving the host name to pick an address.
    return {**env, "SPARK_LOCAL_IP": "127.0.0.1"}


@contextmanager
def running_server(state_dir: Path) -> Iterator[SparkConnectServer]:
    """A server of its own on a free port for a test session or a benchmark, stopped on exit."""
    server = SparkConnectServer(state_dir, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(server: SparkConnectServer) -> int:
    """Run the server in the foreground until Ctrl-C, `make spark-stop`, or its own exit."""
    server.state_dir.mkdir(parents=True, exist_ok=True)
    if running := server.running():
        # Nothing to do, and nothing to clean up: the server belongs to the command that started it.
        print(
            f"A Spark Connect server from {server.state_dir} already runs (PID {running.pid}) on "
            f"{server.url}; it keeps running. 'make spark-stop' stops it.",
            flush=True,
        )
        return 0
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        process = server.start(say=lambda line: print(line, flush=True))
        print(
            f"Spark Connect serves {server.url} (SPARK_REMOTE={server.url}); tables and metastore in "
            f"{server.state_dir}, log {server.log}. Ctrl-C or 'make spark-stop' stops it.",
            flush=True,
        )
        while (code := process.poll()) is None:
            time.sleep(1)
        if server.running() is None and code in (0, 143, -signal.SIGTERM):
            print("The Spark Connect server stopped.")
            return 0
        print(server.describe_exit(code), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Stopping the Spark Connect server…", flush=True)
        return 0
    except SparkServerError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with suppress(SparkServerError):
            server.stop()


def stop(server: SparkConnectServer) -> int:
    if server.stop():
        print(f"Stopped the Spark Connect server of {server.state_dir}.")
    else:
        print(f"No Spark Connect server of {server.state_dir} was running.")
    return 0


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.serve.spark_connect")
    parser.add_argument("command", nargs="?", default="serve", choices=("serve", "stop", "record"))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="tables, metastore and logs")
    options = parser.parse_args(arguments)
    if options.command == "record":
        return record()
    server = SparkConnectServer(options.dir.resolve(), options.port)
    return serve(server) if options.command == "serve" else stop(server)


def record() -> int:
    """`make`'s install step: the class archive, so the first `make spark` serves in seconds."""
    try:
        ensure_class_archive(check_java(), lambda line: print(line, flush=True))
    except SparkServerError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
