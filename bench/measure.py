"""Wall time and peak memory of a command together with every process it starts."""

import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    peak_rss_bytes: int


class CommandFailed(RuntimeError):
    """A measured command exited with an error; the message ends with its last output."""


def measure(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Measurement:
    """Run `command`, its output going to `log`, and sample the process tree's memory."""
    with log.open("wb") as output:
        started = time.perf_counter()
        process = psutil.Popen(command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        peak = PeakSampler(process)
        peak.start()
        returncode = process.wait()
        wall_s = time.perf_counter() - started
        peak.stop()
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise CommandFailed(f"{' '.join(command)} exited with {returncode}; full output in {log}:\n{tail}")
    return Measurement(wall_s, peak.bytes)


class PeakSampler(threading.Thread):
    """The largest sum of RSS over a process and all its descendants (dbt runs as a child)."""

    def __init__(self, process: psutil.Process):
        super().__init__(daemon=True)
        self.process = process
        self.bytes = 0
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            self.bytes = max(self.bytes, tree_rss(self.process))
            self._stopped.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def tree_rss(process: psutil.Process) -> int:
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for member in members:
        # A member that exited between the listing and the reading holds no memory any more.
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total
