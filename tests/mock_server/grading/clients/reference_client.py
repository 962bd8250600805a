"""The grading contract carried out with the project's reference client, `client.HiAPIClient`.

Run as a program (`python reference_client.py`, reading the `HIAPI_*` environment) or called
in-process as `run(env)`. It creates the task (the client gives it an Idempotency-Key), serves
`client.callback_app` on `HIAPI_CALLBACK_PORT` when given one, and polls from 1 s growing x1.5 to
10 s, a callback cutting the wait short: the callback is a hint, the GET is the truth.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import uvicorn

from client import HiAPIClient, HiAPIError, NotFoundError, Task, TaskStatus, callback_app

_FIRST_POLL, _MAX_POLL, _GROWTH = 1.0, 10.0, 1.5
_DEADLINE = 120.0
_START_TIMEOUT = 10.0


class OutputExpired(Exception):
    """The output's link answered 404 and fetching the task again gave no other one."""


def run(env: Mapping[str, str]) -> int:
    """Follow the contract; the exit status."""
    body = json.loads(env["HIAPI_TASK"])
    woken = threading.Event()
    with (
        _receiver(env.get("HIAPI_CALLBACK_PORT"), woken),
        HiAPIClient(base_url=env["HIAPI_BASE_URL"], api_key=env["HIAPI_API_KEY"]) as hiapi,
    ):
        try:
            callback = env.get("HIAPI_CALLBACK_URL")
            task_id = hiapi.create(body["model"], body["input"], callback=callback)
            task = _follow(hiapi, task_id, woken)
            if task.status == TaskStatus.FAIL:
                error = task.error.code if task.error else "no error given"
                print(f"task {task_id} failed: {error}", file=sys.stderr)
                return 1
            _save(hiapi, task, Path(env["HIAPI_OUTPUT_DIR"]))
        except OutputExpired as exc:
            print(f"output unavailable: {exc}", file=sys.stderr)
            return 3
        except HiAPIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def _follow(hiapi: HiAPIClient, task_id: str, woken: threading.Event) -> Task:
    interval, waited = _FIRST_POLL, 0.0
    while True:
        task = hiapi.retrieve(task_id)
        if task.is_terminal or waited > _DEADLINE:
            return task
        woken.wait(interval)  # a callback ends the wait early; without one, polling goes on
        woken.clear()
        waited += interval
        interval = min(interval * _GROWTH, _MAX_POLL)


def _save(hiapi: HiAPIClient, task: Task, folder: Path) -> None:
    for index, output in enumerate(task.output):
        suffix = PurePosixPath(urlsplit(output.url).path).suffix or ".bin"
        target = folder / f"{task.task_id}-{index}{suffix}"
        try:
            hiapi.download(output, target)
        except NotFoundError:
            fresh = hiapi.retrieve(task.task_id).output  # a new link, if the API made one
            if index >= len(fresh) or fresh[index].url == output.url:
                raise OutputExpired(f"{output.url}: 404 (expireAt {output.expire_at})") from None
            hiapi.download(fresh[index], target)


@contextmanager
def _receiver(port: str | None, woken: threading.Event) -> Iterator[None]:
    """`callback_app` on 127.0.0.1:`port` while the block runs (nothing without a port)."""
    if port is None:
        yield
        return
    app = callback_app(lambda task: woken.set())
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(port),
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="callback-receiver", daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(int(_START_TIMEOUT / 0.01)):
        if server.started or not thread.is_alive():
            break
        started.wait(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT)


if __name__ == "__main__":
    sys.exit(run(os.environ))
