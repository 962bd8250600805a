"""A deliberately naive HiAPI client, written for the grading tests. Do not copy it.

Its habits, each one a grade should catch:

- polls every 10 ms, whatever the answer, and ignores `Retry-After` (no backoff);
- retries a failed create blindly, same body, no `Idempotency-Key`, even after a 400;
- retries a failed download blindly;
- its callback receiver downloads the output on every delivery (no deduplication).

Standard library only. Run as a program, or in-process as `run(env)`.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PAUSE = 0.01
_TRIES = 100
_QUIET = 0.3  # how long the receiver must stay idle before the client exits
_WAIT_FOR_CALLBACK = 2.0


class _Api:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.base = env["HIAPI_BASE_URL"].rstrip("/")
        self.auth = {"Authorization": f"Bearer {env['HIAPI_API_KEY']}"}

    def call(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        """(status, parsed JSON or raw bytes); status 0 when the connection failed."""
        data = None if body is None else json.dumps(body).encode()
        headers = {**self.auth, **({"Content-Type": "application/json"} if data else {})}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except (OSError, ValueError, http.client.HTTPException):  # no answer, or a cut one
            return 0, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def download(self, url: str, target: Path) -> bool:
        for _ in range(20):  # blind retries, no backoff
            status, content = self.call("GET", url)
            if status == 200 and isinstance(content, bytes):
                target.write_bytes(content)
                return True
            time.sleep(_PAUSE)
        return False


class _Receiver:
    """Answers every delivery 200 and downloads the task's output each time."""

    def __init__(self, port: int, api: _Api, folder: Path) -> None:
        self.handled = 0
        self.last = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                task = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for output in task.get("output", []):
                    api.download(output["url"], folder / f"callback-{receiver.handled}.png")
                receiver.handled += 1
                receiver.last = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = False  # close() waits for deliveries being handled
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def settle(self) -> None:
        deadline = time.monotonic() + _WAIT_FOR_CALLBACK
        while time.monotonic() < deadline:
            if self.handled and time.monotonic() - self.last > _QUIET:
                break
            time.sleep(_PAUSE)
        self.server.shutdown()
        self.server.server_close()


def run(env: Mapping[str, str]) -> int:
    api = _Api(env)
    body = json.loads(env["HIAPI_TASK"])
    folder = Path(env["HIAPI_OUTPUT_DIR"])
    receiver = None
    if "HIAPI_CALLBACK_PORT" in env:
        body["callback"] = {"url": env["HIAPI_CALLBACK_URL"]}
        receiver = _Receiver(int(env["HIAPI_CALLBACK_PORT"]), api, folder)
    try:
        return _job(api, body, folder)
    finally:
        if receiver is not None:
            receiver.settle()


def _job(api: _Api, body: dict[str, Any], folder: Path) -> int:
    task_id = None
    for _ in range(_TRIES):  # blind retry: same body, no Idempotency-Key, no backoff
        status, answer = api.call("POST", f"{api.base}/v1/tasks", body)
        if status == 200:
            task_id = answer["data"]["taskId"]
            break
        time.sleep(_PAUSE)
    if task_id is None:
        return 1
    while True:  # fixed 10 ms polling, Retry-After ignored
        status, answer = api.call("GET", f"{api.base}/v1/tasks/{task_id}")
        if status == 200 and answer["data"]["status"] in ("success", "fail"):
            task = answer["data"]
            break
        time.sleep(_PAUSE)
    if task["status"] == "fail":
        return 1
    saved = [api.download(o["url"], folder / f"{task_id}.png") for o in task["output"]]
    return 0 if all(saved) else 1


if __name__ == "__main__":
    sys.exit(run(os.environ))
