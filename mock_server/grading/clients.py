"""The client under test: a command run as a subprocess, or a Python callable in a thread.

Both are given the environment of the grading contract (`runner.client_env`) and end as an
`Execution`. A command runs in a session of its own; when it ends, or at the timeout, the
whole session is stopped, so helpers it left behind (a receiver, a background curl) go too.
A callable cannot be killed: past the timeout it is reported as timed out and left running.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeAlias, runtime_checkable

from .errors import GradingError
from .observe import Execution

__all__ = ["ClientFunction", "ClientUnderTest", "Command", "PythonClient", "as_client"]

#: A client written in Python: given the contract's environment, returns its exit status.
ClientFunction: TypeAlias = Callable[[Mapping[str, str]], "int | None"]

_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
_TAIL_BYTES = 8192
_TAIL_LINES = 20
_LOOPBACK = "127.0.0.1,localhost"


@runtime_checkable
class ClientUnderTest(Protocol):
    """Something that can be run once per scenario."""

    @property
    def label(self) -> str: ...

    def run(self, env: Mapping[str, str], timeout: float, workdir: Path) -> Execution: ...


class Command:
    """A program, run as `argv` with the contract's variables added to this environment.

    Any `HIAPI_*` variable of the grader's own environment is left out, so a real key never
    reaches the client under test; `NO_PROXY` covers the loopback address.
    """

    def __init__(self, argv: Sequence[str], *, cwd: Path | None = None) -> None:
        if not argv:
            raise GradingError("no command to grade: give it after --")
        self.argv = list(argv)
        self.cwd = cwd

    @property
    def label(self) -> str:
        return shlex.join(self.argv)

    def run(self, env: Mapping[str, str], timeout: float, workdir: Path) -> Execution:
        out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            started = time.monotonic()
            try:
                process = subprocess.Popen(
                    self.argv, env=environment(env), cwd=self.cwd, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise GradingError(f"cannot run {self.label}: {exc}") from None
            try:
                code: int | None = process.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                _stop(process)
            wall = time.monotonic() - started
        return Execution(code, code is None, wall, _tail(out_path), _tail(err_path))


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without `HIAPI_*`, loopback unproxied, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("HIAPI_")}
    for name in ("NO_PROXY", "no_proxy"):
        base[name] = ",".join(filter(None, (base.get(name), _LOOPBACK)))
    return base | dict(env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the client's whole session: politely while the client runs, then for sure."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_GRACE)
    # Whatever is left of the session, the client itself included, is killed.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait(_GRACE)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing of it is left
        os.killpg(pgid, sig)


def _tail(path: Path) -> str:
    with path.open("rb") as file:
        file.seek(max(path.stat().st_size - _TAIL_BYTES, 0))
        text = file.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-_TAIL_LINES:])


class PythonClient:
    """A Python callable run in a daemon thread; an exception is exit status 1 with its
    traceback as the stderr."""

    def __init__(self, function: ClientFunction, label: str | None = None) -> None:
        self.function = function
        self._label: str = label or str(getattr(function, "__qualname__", repr(function)))

    @property
    def label(self) -> str:
        return self._label

    def run(self, env: Mapping[str, str], timeout: float, workdir: Path) -> Execution:
        outcome: list[int] = []
        errors: list[str] = []

        def target() -> None:
            try:
                outcome.append(self.function(dict(env)) or 0)
            except SystemExit as exc:
                outcome.append(exc.code if isinstance(exc.code, int) else 1)
            except Exception:
                errors.append(traceback.format_exc())
                outcome.append(1)

        thread = threading.Thread(target=target, name=f"graded:{self.label}", daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(timeout)
        wall = time.monotonic() - started
        if thread.is_alive():
            return Execution(None, True, wall)
        return Execution(outcome[0], False, wall, "", "".join(errors)[-_TAIL_BYTES:])


def as_client(client: ClientUnderTest | ClientFunction | Sequence[str]) -> ClientUnderTest:
    """A `ClientUnderTest` from one, a callable (`PythonClient`) or an argv list (`Command`)."""
    if isinstance(client, ClientUnderTest):
        return client
    if callable(client):
        return PythonClient(client)
    if isinstance(client, str):
        raise GradingError("give a command as a list of arguments, not one string")
    return Command(client)
