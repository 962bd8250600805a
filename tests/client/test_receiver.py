"""`callback_app`: verify, acknowledge, and run the handler once per task."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from client import CallbackReceiver, Task, callback_app, sign_callback

from .support import TASK_ID, task_data

SECRET = "whsec_0123456789abcdef"
NOW = 1_795_619_500
BODY = json.dumps(task_data("success")).encode()


def signed(body: bytes = BODY, stamp: int = NOW) -> dict[str, str]:
    return sign_callback(body, SECRET, timestamp=stamp)


async def deliver(
    app: Starlette, *copies: tuple[bytes, dict[str, str]], method: str = "POST"
) -> list[httpx.Response]:
    """Send every copy at the same moment (one task each, gathered)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
        return await asyncio.gather(
            *(http.request(method, "/hiapi/callback", content=b, headers=h) for b, h in copies)
        )


def post(
    app: Starlette, body: bytes = BODY, headers: dict[str, str] | None = None
) -> httpx.Response:
    [response] = asyncio.run(deliver(app, (body, signed(body) if headers is None else headers)))
    return response


class Recorder:
    """An async handler that yields to the loop a few times, as real work would."""

    def __init__(self) -> None:
        self.tasks: list[Task] = []

    async def __call__(self, task: Task) -> None:
        self.tasks.append(task)
        for _ in range(5):
            await asyncio.sleep(0)


def receiver_of(app: Starlette) -> CallbackReceiver:
    receiver = app.state.receiver
    assert isinstance(receiver, CallbackReceiver)
    return receiver


def test_a_signed_delivery_is_acknowledged_and_handled() -> None:
    handler = Recorder()
    app = callback_app(handler, secret=SECRET, clock=lambda: NOW)
    response = post(app)
    assert response.status_code == 200
    assert [task.task_id for task in handler.tasks] == [TASK_ID]
    assert [task.task_id for task in receiver_of(app).handled] == [TASK_ID]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        signed(stamp=NOW - 301),
        {**signed(), "X-HiAPI-Signature": "0" * 64},
        sign_callback(BODY, "another-key-0123456", timestamp=NOW),
    ],
)
def test_a_delivery_that_does_not_verify_is_401_and_not_handled(headers: dict[str, str]) -> None:
    handler = Recorder()
    app = callback_app(handler, secret=SECRET, clock=lambda: NOW)
    response = post(app, headers=headers)
    assert response.status_code == 401
    assert response.json()["received"] is False
    assert handler.tasks == []


def test_without_a_secret_unsigned_deliveries_are_accepted() -> None:
    handler = Recorder()
    assert post(callback_app(handler), headers={}).status_code == 200
    assert len(handler.tasks) == 1


@pytest.mark.parametrize("secret", [None, SECRET])
def test_a_body_that_is_not_a_task_is_400(secret: str | None) -> None:
    handler = Recorder()
    body = b'{"hello": "world"}'
    app = callback_app(handler, secret=secret, clock=lambda: NOW)
    assert post(app, body, signed(body)).status_code == 400
    assert handler.tasks == []


def test_two_identical_deliveries_run_the_handler_once() -> None:
    handler = Recorder()
    app = callback_app(handler, secret=SECRET, clock=lambda: NOW)
    assert post(app).status_code == 200
    assert post(app, headers=signed(stamp=NOW + 60)).status_code == 200
    assert len(handler.tasks) == 1
    assert receiver_of(app).duplicates == 1


def test_concurrent_copies_run_the_handler_once() -> None:
    handler = Recorder()
    app = callback_app(handler, secret=SECRET, clock=lambda: NOW)
    responses = asyncio.run(deliver(app, *[(BODY, signed())] * 5))
    assert [response.status_code for response in responses] == [200] * 5
    assert len(handler.tasks) == 1
    assert receiver_of(app).duplicates == 4


def test_concurrent_copies_of_different_tasks_each_run_once() -> None:
    handler = Recorder()
    app = callback_app(handler)
    bodies = [json.dumps(task_data("success", task_id=f"tk-{n}")).encode() for n in range(3)]
    asyncio.run(deliver(app, *[(body, {}) for body in bodies * 2]))
    assert sorted(task.task_id for task in handler.tasks) == ["tk-0", "tk-1", "tk-2"]


def test_a_sync_handler_runs_once_in_a_worker_thread() -> None:
    threads: list[int] = []

    def handler(task: Task) -> None:
        threads.append(threading.get_ident())

    app = callback_app(handler)
    asyncio.run(deliver(app, (BODY, {}), (BODY, {})))
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


def test_a_failing_handler_still_gets_2xx_and_a_redelivery_retries_it() -> None:
    attempts: list[str] = []

    async def flaky(task: Task) -> None:
        attempts.append(task.task_id)
        if len(attempts) == 1:
            raise RuntimeError("database down")

    app = callback_app(flaky)
    receiver = receiver_of(app)
    assert post(app, headers={}).status_code == 200
    [(task, exc)] = receiver.errors
    assert task.task_id == TASK_ID and isinstance(exc, RuntimeError)
    assert list(receiver.handled) == []
    assert post(app, headers={}).status_code == 200
    assert post(app, headers={}).status_code == 200
    assert attempts == [TASK_ID, TASK_ID]
    assert [task.task_id for task in receiver.handled] == [TASK_ID]


def test_other_methods_are_405() -> None:
    [response] = asyncio.run(deliver(callback_app(Recorder()), (b"", {}), method="GET"))
    assert response.status_code == 405


def test_an_oversized_body_is_413() -> None:
    receiver = CallbackReceiver(Recorder(), max_body_bytes=64)
    assert post(receiver.app, headers={}).status_code == 413


def test_wait_idle_returns_once_the_handler_finished() -> None:
    async def scenario() -> None:
        gate = anyio.Event()
        done: list[str] = []

        async def slow(task: Task) -> None:
            await gate.wait()
            done.append(task.task_id)

        receiver = CallbackReceiver(slow)
        async with anyio.create_task_group() as group:
            group.start_soon(deliver, receiver.app, (BODY, {}))
            await _until(lambda: not receiver.idle)
            await _finishes_quickly(receiver.wait_idle(), expected=False)
            gate.set()
            with anyio.fail_after(5):
                await receiver.wait_idle()
        assert receiver.idle and done == [TASK_ID]

    asyncio.run(scenario())


def test_reset_forgets_every_task() -> None:
    handler = Recorder()
    receiver = CallbackReceiver(handler)
    post(receiver.app, headers={})
    receiver.reset()
    assert (list(receiver.handled), receiver.duplicates) == ([], 0)
    post(receiver.app, headers={})
    assert len(handler.tasks) == 2


def test_old_task_ids_are_forgotten_past_max_remembered() -> None:
    handler = Recorder()
    receiver = CallbackReceiver(handler, max_remembered=2)
    bodies = [json.dumps(task_data("success", task_id=f"tk-{n}")).encode() for n in range(3)]
    for body in [*bodies, bodies[0], bodies[2]]:
        post(receiver.app, body, {})
    assert [task.task_id for task in handler.tasks] == ["tk-0", "tk-1", "tk-2", "tk-0"]


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not condition():
            await anyio.sleep(0)


async def _finishes_quickly(awaitable: Awaitable[Any], *, expected: bool) -> None:
    finished = False
    with anyio.move_on_after(0.05):
        await awaitable
        finished = True
    assert finished is expected
