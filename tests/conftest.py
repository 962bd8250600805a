"""Fixtures shared by the whole suite: a fake on a manual clock, reached in-process or through
a real uvicorn server, with every answer checked against `openapi.yaml`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from mock_server.app import create_app
from mock_server.backend import Backend
from mock_server.catalog import Profile, Timing
from mock_server.clock import ManualClock
from mock_server.config import MockConfig
from mock_server.server import ServerThread

from .conformance import check

KEY = "sk-test-alice"
OTHER_KEY = "sk-test-bob"
#: Timings the lifecycle tests rely on: 1 s queued, 10 s handling, 2 s archiving.
TIMING = Timing(queued=1.0, handling=10.0, archiving=2.0)
PAGE_EXAMPLE: dict[str, Any] = {
    "model": "Nano-Banana-Pro",
    "input": {
        "prompt": "A luxury product photo of a banana on black marble",
        "image_input": [],
        "aspect_ratio": "1:1",
        "resolution": "1K",
        "output_format": "png",
    },
}
REFERENCE_EXAMPLE: dict[str, Any] = {
    "model": "Nano-Banana-Pro",
    "input": {
        "prompt": "Turn this reference into a polished ecommerce hero image",
        "image_input": ["https://example.com/reference.png"],
        "aspect_ratio": "4:5",
        "resolution": "1K",
        "output_format": "png",
    },
}


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds, at most `timeout` seconds; fail otherwise."""
    waiter = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        waiter.wait(0.005)
    raise AssertionError(f"condition not met within {timeout} s")


@dataclass
class Fake:
    """A fake and a client for it; `transport` says whether it runs in-process or on uvicorn."""

    backend: Backend
    clock: ManualClock
    client: httpx2.Client
    transport: str
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def create(
        self, body: Any, key: str = KEY, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        return self.client.post("/v1/tasks", json=body, headers={**auth(key), **(headers or {})})

    def task_id(self, body: Any = None, key: str = KEY) -> str:
        response = self.create(PAGE_EXAMPLE if body is None else body, key)
        assert response.status_code == 200, response.text
        task_id: str = response.json()["data"]["taskId"]
        return task_id

    def get(self, task_id: str, key: str = KEY) -> httpx2.Response:
        return self.client.get(f"/v1/tasks/{task_id}", headers=auth(key))

    def task(self, task_id: str, key: str = KEY) -> dict[str, Any]:
        response = self.get(task_id, key)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()


def build_fake(config: MockConfig, transport: str, clock: ManualClock | None = None) -> Fake:
    clock = clock or ManualClock()
    backend = Backend(config, clock=clock)
    app = create_app(backend=backend)
    hooks = {"response": [check]}
    if transport == "asgi":
        client: httpx2.Client = TestClient(app, raise_server_exceptions=True)
        client.event_hooks = hooks
        return Fake(backend, clock, client, transport, [backend.close, client.close])
    server = ServerThread(app).start()
    client = httpx2.Client(base_url=server.url, event_hooks=hooks, timeout=30)
    return Fake(backend, clock, client, transport, [backend.close, server.stop, client.close])


def fixed_config(**overrides: Any) -> MockConfig:
    options: dict[str, Any] = {"seed": 1, "profile": Profile("fixed", fixed=TIMING)}
    options.update(overrides)
    return MockConfig(**options)


@pytest.fixture(params=["asgi", "uvicorn"])
def transport(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def make_fake(transport: str) -> Iterator[Callable[..., Fake]]:
    """Build fakes with a given config over the parametrized transport; closed at teardown."""
    fakes: list[Fake] = []

    def make(config: MockConfig | None = None, clock: ManualClock | None = None) -> Fake:
        fake = build_fake(config or fixed_config(), transport, clock)
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        fake.close()


@pytest.fixture
def fake(make_fake: Callable[..., Fake]) -> Fake:
    """The default fake: seed 1, fixed 1 s / 10 s / 2 s timings, on a manual clock."""
    return make_fake()


@pytest.fixture
def asgi_fake() -> Iterator[Fake]:
    """An in-process fake only, for checks that gain nothing from a real socket."""
    fake = build_fake(fixed_config(), "asgi")
    yield fake
    fake.close()
