"""Start and stop the servers under test, each in a process group of its own on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .tooling import ROOT, WORK

__all__ = [
    "HOST",
    "Server",
    "free_port",
    "group_cpu_seconds",
    "machine_busy_seconds",
    "python_command",
    "running",
    "start",
]

HOST = "127.0.0.1"
_READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One running server process (the leader of its own process group)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM to the group this process leads (npx's java child included), then SIGKILL."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        # A child that outlived its leader still belongs to the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by every live process of a process group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / _TICKS


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, anyone's processes)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in first]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / _TICKS


def start(name: str, command: Sequence[str], port: int, cwd: Path = ROOT) -> Server:
    """Run `command` in `cwd` (it must listen on `port`); wait until the port answers."""
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(name, port, process, log)
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not listen on {HOST}:{port} within {_READY_TIMEOUT:g} s")


@contextlib.contextmanager
def running(name: str, command: Sequence[str], port: int, cwd: Path = ROOT) -> Iterator[Server]:
    server = start(name, command, port, cwd)
    try:
        yield server
    finally:
        server.stop()


def python_command(*args: str) -> list[str]:
    """This interpreter (the project's virtualenv), running `args`."""
    return [sys.executable, *args]
