"""Scripted servers, a fake clock and one face for both clients, for the client's unit tests."""

from __future__ import annotations

import asyncio
import builtins
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from client import AsyncHiAPIClient, HiAPIClient, Task, TaskOutput, TaskPage

API_KEY = "sk-test-unit"
BASE = "https://api.test"
TASK_ID = "tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR"
PROMPT = {"prompt": "A luxury product photo of a banana on black marble"}
MODEL = "Nano-Banana-Pro"

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def envelope(data: object, code: int = 200, message: str = "success") -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


def ok(data: object, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=envelope(data), headers=headers)


def created(task_id: str = TASK_ID) -> httpx.Response:
    return ok({"taskId": task_id})


def error(
    status: int,
    error_code: str | None = None,
    message: str = "something went wrong",
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"code": status, "message": message, "data": None}
    if error_code is not None:
        body["error_code"] = error_code
    return httpx.Response(status, json=body, headers=headers)


def task_data(status: str = "queued", task_id: str = TASK_ID, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "taskId": task_id,
        "model": MODEL,
        "status": status,
        "created": 1_795_619_433,
        "completed": 0,
    }
    if status == "success":
        data["completed"] = 1_795_619_450
        data["output"] = [
            {"url": "https://cdn.test/out/0.png", "type": "image", "expireAt": 1_796_224_250}
        ]
    if status == "fail":
        data["completed"] = 1_795_619_450
        data["error"] = {"code": "TASK_FAILED", "message": "upstream rejected the prompt"}
    data.update(extra)
    return data


def task_reply(status: str = "queued", **extra: Any) -> httpx.Response:
    return ok(task_data(status, **extra))


class Script:
    """A scripted server: each request gets the next reply; every request is recorded."""

    def __init__(self, *replies: Reply) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.replies, f"unexpected request: {request.method} {request.url}"
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    @property
    def count(self) -> int:
        return len(self.requests)

    def header(self, name: str) -> list[str | None]:
        return [request.headers.get(name) for request in self.requests]


@dataclass
class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class SyncApi:
    """`HiAPIClient` behind the face the parametrized tests use."""

    kind = "sync"

    def __init__(self, client: HiAPIClient) -> None:
        self.client = client

    def create(self, model: str, input: Mapping[str, Any], **options: Any) -> str:
        return self.client.create(model, input, **options)

    def retrieve(self, task_id: str) -> Task:
        return self.client.retrieve(task_id)

    def list(self, page: int = 1, size: int = 20) -> TaskPage:
        return self.client.list(page, size)

    def tasks(self, **options: Any) -> builtins.list[Task]:
        return [*self.client.iter_tasks(**options)]

    def wait(self, task_id: str, **options: Any) -> Task:
        return self.client.wait(task_id, **options)

    def run(self, model: str, input: Mapping[str, Any], **options: Any) -> Task:
        return self.client.run(model, input, **options)

    def download(self, source: TaskOutput | str, path: Path | None = None) -> bytes | Path:
        return self.client.download(source) if path is None else self.client.download(source, path)

    def chunks(self, parts: builtins.list[bytes | Exception]) -> Any:
        def stream() -> Iterator[bytes]:
            for part in parts:
                if isinstance(part, Exception):
                    raise part
                yield part

        return stream()

    def close(self) -> None:
        self.client.close()


class AsyncApi:
    """`AsyncHiAPIClient` driven by `asyncio.run`, behind the same face."""

    kind = "async"

    def __init__(self, client: AsyncHiAPIClient) -> None:
        self.client = client

    def create(self, model: str, input: Mapping[str, Any], **options: Any) -> str:
        return asyncio.run(self.client.create(model, input, **options))

    def retrieve(self, task_id: str) -> Task:
        return asyncio.run(self.client.retrieve(task_id))

    def list(self, page: int = 1, size: int = 20) -> TaskPage:
        return asyncio.run(self.client.list(page, size))

    def tasks(self, **options: Any) -> builtins.list[Task]:
        iterator = self.client.iter_tasks(**options)

        async def collect() -> builtins.list[Task]:
            return [task async for task in iterator]

        return asyncio.run(collect())

    def wait(self, task_id: str, **options: Any) -> Task:
        return asyncio.run(self.client.wait(task_id, **options))

    def run(self, model: str, input: Mapping[str, Any], **options: Any) -> Task:
        return asyncio.run(self.client.run(model, input, **options))

    def download(self, source: TaskOutput | str, path: Path | None = None) -> bytes | Path:
        if path is None:
            return asyncio.run(self.client.download(source))
        return asyncio.run(self.client.download(source, path))

    def chunks(self, parts: builtins.list[bytes | Exception]) -> Any:
        async def stream() -> AsyncIterator[bytes]:
            for part in parts:
                if isinstance(part, Exception):
                    raise part
                yield part

        return stream()

    def close(self) -> None:
        asyncio.run(self.client.aclose())


Api = SyncApi | AsyncApi


def client_options(clock: FakeClock, **options: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "base_url": BASE,
        "api_key": API_KEY,
        "clock": clock,
        "rng": random.Random(7),
    }
    return {**defaults, **options}


def make_sync(script: Script, clock: FakeClock, **options: Any) -> SyncApi:
    client = HiAPIClient(
        transport=script.transport, sleep=clock.sleep, **client_options(clock, **options)
    )
    return SyncApi(client)


def make_async(script: Script, clock: FakeClock, **options: Any) -> AsyncApi:
    client = AsyncHiAPIClient(
        transport=script.transport, sleep=clock.asleep, **client_options(clock, **options)
    )
    return AsyncApi(client)
