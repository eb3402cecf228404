"""`make spark` and `make spark-stop`: a local Spark Connect server, the warehouse of JAFFLE_ENV=spark.

    python -m dagster_project.serve.spark_connect [serve|stop] [--port PORT] [--dir DIR]

One JVM runs Spark's driver with a `local[2]` master and serves Spark Connect (the protocol
Databricks speaks) on 127.0.0.1 only. Its tables live in DIR (`.spark/` by default): the Hive
catalog's warehouse files and metastore, Derby's log and the server's own log. The server runs
in a session of its own, recorded in a PID file with its start time, so `stop` signals only the
server it started, never a process that reused the PID.

pyspark is imported only by `wait_until_answering`, so importing this module costs nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1",)
# Bounds for a busy machine, not expectations: docs/benchmarks.md has the measured start times.
START_TIMEOUT = 180
STOP_GRACE = 30


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


def check_java() -> None:
    java = shutil.which("java")
    output = java_version_output(java) if java else ""
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if problem := java_problem(java, output, sys.platform, package_manager(), is_root):
        raise SparkServerError(problem)


@dataclass(frozen=True)
class SparkConnectServer:
    """A Spark Connect server on 127.0.0.1:port whose state lives in ``state_dir``."""

    state_dir: Path
    port: int = DEFAULT_PORT

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

    def start(self) -> subprocess.Popen:
        """Start the server and return once it answers a query; raise with its log if it cannot."""
        if running := self.running():
            raise SparkServerError(
                f"A Spark Connect server from {self.state_dir} already runs (PID {running.pid}) on "
                f"{self.url}; 'make spark-stop' stops it."
            )
        check_java()
        if port_open(self.port):
            raise SparkServerError(
                f"Port {self.port} on 127.0.0.1 is taken by another program, so the Spark Connect server "
                f"cannot listen there: stop that program, or choose another port (make spark SPARK_PORT=…)."
            )
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
        """Poll until the port is open, then run one query through Spark Connect."""
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(self.port):
            if (code := process.poll()) is not None:
                raise SparkServerError(self.describe_exit(code))
            if time.monotonic() > deadline:
                raise SparkServerError(
                    f"The Spark Connect server did not listen on {self.url} within {START_TIMEOUT} s; "
                    f"its log: {self.log}"
                )
            time.sleep(0.5)
        # The gRPC port opens once the driver is up; a query proves the session side works too.
        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(self.url).create()
        try:
            session.sql("select 1").collect()
        finally:
            session.stop()

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
        process = server.start()
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
    parser.add_argument("command", nargs="?", default="serve", choices=("serve", "stop"))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="tables, metastore and logs")
    options = parser.parse_args(arguments)
    server = SparkConnectServer(options.dir.resolve(), options.port)
    return serve(server) if options.command == "serve" else stop(server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
