"""wrk, driven by a generated Lua script that sets the method, body and headers and prints its
summary as one JSON line (requests, errors, latency percentiles in microseconds)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .tooling import WORK

__all__ = ["WrkResult", "lua_script", "parse_summary", "run_wrk"]

_MARK = "BENCH-SUMMARY "

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\\n',
    "__MARK__", summary.requests, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run: throughput, latency (milliseconds) and what went wrong."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "seconds": self.seconds,
            "rps": self.rps,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "non2xx": self.non2xx,
            "socket_errors": self.socket_errors,
        }


def _lua_string(text: str) -> str:
    """A double-quoted Lua string literal (decimal escapes for anything but plain ASCII)."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        plain = 32 <= byte < 127 and char not in '"\\'
        out.append(char if plain else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_script(method: str, headers: Mapping[str, str], body: str | None = None) -> str:
    """A wrk script sending every request as `method` with `headers` and `body`."""
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _DONE.replace("__MARK__", _MARK)


def parse_summary(output: str) -> WrkResult:
    """The result from wrk's output (the line our `done` printed)."""
    for line in output.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line[len(_MARK) :])
            return WrkResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                p50_ms=raw["p50"] / 1000,
                p90_ms=raw["p90"] / 1000,
                p99_ms=raw["p99"] / 1000,
                max_ms=raw["max"] / 1000,
                non2xx=raw["non2xx"],
                socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
            )
    raise RuntimeError(f"wrk printed no summary:\n{output[-2000:]}")


def run_wrk(
    url: str,
    script: str,
    *,
    seconds: float,
    connections: int = 32,
    threads: int = 1,
    name: str = "run",
) -> WrkResult:
    """wrk for `seconds` at `connections` connections, with `script`."""
    WORK.mkdir(parents=True, exist_ok=True)
    path: Path = WORK / f"wrk-{name}.lua"
    path.write_text(script)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(path),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse_summary(done.stdout + done.stderr)
