"""Section 4: resident memory per task held, and (with `--state`) file size per task.

In memory: each size runs in a fresh process (`python -m bench.memory N SECONDS`, JSON on
stdout) that builds a `Backend` (default config, manual clock), creates one task to load
everything, reads its RSS, creates N tasks through `Backend.create` (the Python API, no HTTP),
collects garbage and reads RSS again. Each body is decoded from JSON text with its own prompt,
and each base URL is a fresh string, as for tasks created over HTTP. A size that does not
finish within SECONDS stops early and reports how many tasks it held.

On disk: only if `hiapi-mock serve --help` offers `--state`; then a server on a fresh state
file is loaded with wrk POSTs for a few seconds, and the file size (with its -wal and -shm) is
divided by the number of tasks the server lists.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "memory_per_task", "state_file_per_task"]

_KEY = "sk-bench-memory"


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _body(index: int) -> Any:
    text = (
        '{"model":"Nano-Banana-Pro","input":{"prompt":"A luxury product photo of a banana on '
        f'black marble, take {index}","aspect_ratio":"1:1","resolution":"1K",'
        '"output_format":"png"}}'
    )
    return json.loads(text)


async def _fill(count: int, seconds: float) -> dict[str, Any]:
    from mock_server.backend import Backend
    from mock_server.clock import ManualClock
    from mock_server.config import MockConfig

    backend = Backend(MockConfig(), clock=ManualClock())
    port = 8000
    await backend.create(_KEY, _body(-1), None, f"http://127.0.0.1:{port}/")
    gc.collect()
    before = _rss_bytes()
    started = time.perf_counter()
    deadline = started + seconds
    made = 0
    for index in range(count):
        await backend.create(_KEY, _body(index), None, f"http://127.0.0.1:{port}/")
        made += 1
        if index % 4096 == 0 and time.perf_counter() > deadline:
            break
    elapsed = time.perf_counter() - started
    gc.collect()
    after = _rss_bytes()
    held = len(backend.store) - 1
    return {
        "asked": count,
        "tasks": held,
        "created": made,
        "seconds": elapsed,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_task": (after - before) / held if held else 0.0,
        "complete": made == count,
    }


def memory_per_task(count: int, seconds: float) -> dict[str, Any]:
    """RSS growth per task for `count` tasks, measured in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", str(count), str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory run for {count} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _has_state_flag(command: list[str]) -> bool:
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    return "--state" in done.stdout


def state_file_per_task(seconds: float = 5.0) -> dict[str, Any]:
    """File bytes per task with `--state`, or why it was not measured."""
    import httpx

    from .http_bench import BODY, fake_command
    from .servers import free_port, running
    from .wrk import lua_script, run_wrk

    probe = fake_command(0)[:-2]  # `... serve` without --port
    if not _has_state_flag(probe):
        return {"available": False, "reason": "hiapi-mock serve has no --state option"}
    with tempfile.TemporaryDirectory(prefix="hiapi-bench-state-") as folder:
        path = Path(folder) / "state.db"
        port = free_port()
        auth = {"Authorization": f"Bearer {_KEY}"}
        with running("hiapi-mock-state", fake_command(port, "--state", str(path)), port) as fake:
            script = lua_script("POST", {**auth, "Content-Type": "application/json"}, BODY)
            load = run_wrk(f"{fake.url}/v1/tasks", script, seconds=seconds, name="state")
            listed = httpx.get(f"{fake.url}/v1/tasks?size=1", headers=auth, timeout=30)
            listed.raise_for_status()
            tasks = int(listed.json()["data"]["total"])
            files = [p for p in Path(folder).iterdir() if p.name.startswith(path.name)]
            size = sum(p.stat().st_size for p in files)
        closed = sum(p.stat().st_size for p in Path(folder).iterdir())
    return {
        "available": True,
        "tasks": tasks,
        "post_rps": load.rps,
        "bytes_while_serving": size,
        "bytes_after_stop": closed,
        "bytes_per_task": size / tasks if tasks else 0.0,
        "bytes_per_task_after_stop": closed / tasks if tasks else 0.0,
    }


def main() -> None:
    count = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
    print(json.dumps(asyncio.run(_fill(count, seconds))))


if __name__ == "__main__":
    main()
