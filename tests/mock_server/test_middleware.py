"""The gate every request passes, called as ASGI with a `receive` of the test's making: a body
still on its way is timed, one already in hand is not."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message

from mock_server.app import create_app
from mock_server.config import MockConfig

BODY = json.dumps({"model": "Nano-Banana-Pro", "input": {"prompt": "a banana"}}).encode()


class Cycle:
    """Stands in for uvicorn's request cycle: `receive` answers at once when `message_event`
    is set (the body is in hand) and otherwise waits until it is."""

    def __init__(self, arrived: bool) -> None:
        self.message_event = asyncio.Event()
        if arrived:
            self.message_event.set()
        self.sent = False

    async def receive(self) -> Message:
        await self.message_event.wait()
        if self.sent:
            await asyncio.Event().wait()  # the client sends nothing more
        self.sent = True
        return {"type": "http.request", "body": BODY, "more_body": False}


async def post(cycle: Cycle, body_timeout: float) -> tuple[int, dict[str, Any]]:
    app = create_app(MockConfig(profile="instant"), body_timeout=body_timeout)
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", b"Bearer sk-test"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/tasks", "raw_path": b"/v1/tasks", "root_path": "",
        "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    async with asyncio.timeout(10):
        await app(scope, cycle.receive, send)
    return answer["status"], json.loads(answer["body"])


def count_timers(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    armed: list[float | None] = []
    real = asyncio.timeout

    def counting(delay: float | None) -> asyncio.Timeout:
        armed.append(delay)
        return real(delay)

    monkeypatch.setattr(asyncio, "timeout", counting)
    return armed


def test_a_body_already_in_hand_is_read_without_a_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    armed = count_timers(monkeypatch)
    status, body = asyncio.run(post(Cycle(arrived=True), body_timeout=0.05))
    assert status == 200 and body["data"]["taskId"].startswith("tk-")
    assert armed == [10]  # the test's own bound, no body timer


def test_a_body_still_on_its_way_is_timed_and_refused_in_the_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    armed = count_timers(monkeypatch)
    status, body = asyncio.run(post(Cycle(arrived=False), body_timeout=0.05))
    assert armed == [10, 0.05]
    assert status == 408
    assert (
        body["error_code"] == "REQUEST_TIMEOUT" and "body: not received within" in body["message"]
    )
