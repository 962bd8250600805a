"""Section 3: N tasks through their whole lifecycle under the manual clock.

Runs in a process of its own (`python -m bench.lifecycle N`, JSON on stdout), the receiver in
another. Tasks are created and polled in-process: each create and each poll is one call of the
fake's ASGI app (`Settings.create_app()` of the default settings with `clock = "manual"`), so the
whole middleware stack and the routes run, without sockets. Callbacks leave over real HTTP to
the receiver on 127.0.0.1, from the fake's scheduler thread, as they do under `hiapi-mock serve`.

Phases, timed on the wall clock: create N tasks with `callback.url`; advance the clock past
every task's end; poll every task once (each must be terminal); wait until the fake's delivery
log shows N delivered (2xx) callbacks; ask the receiver how many arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from typing import Any

from mock_server.settings import load_settings

from .asgi import call_json

__all__ = ["main", "run_lifecycle"]

_KEY = "sk-bench-lifecycle"
_TERMINAL = ("success", "fail")
_DRAIN_TIMEOUT = 120.0


def _body(index: int, callback_url: str) -> bytes:
    body = {
        "model": "Nano-Banana-Pro",
        "input": {"prompt": f"A banana on black marble, #{index}", "resolution": "1K"},
        "callback": {"url": callback_url},
    }
    return json.dumps(body).encode()


def _delivered(backend: Any) -> int:
    return sum(1 for attempt in backend.callbacks.log if attempt.ok)


async def _lifecycle(count: int, callback_url: str) -> dict[str, Any]:
    settings = load_settings(None, {"fake": {"clock": "manual"}})
    app = settings.create_app()
    backend = app.state.backend
    auth = {"authorization": f"Bearer {_KEY}"}
    post_headers = {**auth, "content-type": "application/json"}
    bodies = [_body(i, callback_url) for i in range(count)]
    started = time.perf_counter()
    ids = []
    for body in bodies:
        status, answer = await call_json(app, "POST", "/v1/tasks", post_headers, body)
        if status != 200:
            raise RuntimeError(f"create answered {status}: {answer}")
        ids.append(answer["data"]["taskId"])
    created = time.perf_counter()
    settings.clock.advance(3600)
    advanced = time.perf_counter()
    terminal = 0
    for task_id in ids:
        status, answer = await call_json(app, "GET", f"/v1/tasks/{task_id}", auth)
        terminal += status == 200 and answer["data"]["status"] in _TERMINAL
    polled = time.perf_counter()
    # Blocks this thread on a condition (no polling, so no fight for the GIL with deliveries).
    with contextlib.suppress(AssertionError):
        backend.callbacks.wait_idle(_DRAIN_TIMEOUT)
    drained = time.perf_counter()
    delivered = _delivered(backend)
    attempts = len(backend.callbacks.log)
    backend.close()
    return {
        "tasks": count,
        "terminal": terminal,
        "delivered": delivered,
        "attempts": attempts,
        "create_s": created - started,
        "advance_s": advanced - created,
        "poll_s": polled - advanced,
        "drain_after_poll_s": drained - polled,
        "callbacks_s": drained - created,
        "total_s": drained - started,
    }


def run_lifecycle(count: int) -> dict[str, Any]:
    """Start the receiver, run the lifecycle; the timings and counts."""
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver_proc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdin is not None and receiver.stdout is not None
    try:
        url = receiver.stdout.readline().strip()
        result = asyncio.run(_lifecycle(count, url + "/hooks/hiapi"))
        receiver.stdin.write("count\n")
        receiver.stdin.flush()
        result["received"] = int(receiver.stdout.readline())
    finally:
        receiver.stdin.close()
        receiver.wait(30)
    result["tasks_per_s"] = count / result["total_s"]
    result["callbacks_per_s"] = result["delivered"] / result["callbacks_s"]
    return result


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(run_lifecycle(count)))


if __name__ == "__main__":
    main()
