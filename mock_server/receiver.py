"""A real HTTP receiver for the fake's callbacks, with switches to make it misbehave.

Point `callback.url` at it, let the fake deliver, then look at exactly what arrived:

    with CallbackReceiver() as receiver:
        receiver.fail_next(1, status=503)   # refuse the first delivery
        create_task(callback={"url": receiver.url_for("/hooks/a")})
        first, retry = receiver.wait_for(2)
        assert (first.answered, retry.answered) == (503, 200)
        assert retry.json()["taskId"] == first.json()["taskId"]

Every request, of any method to any path, is recorded the moment its body has arrived and is
answered `200 {"ok": true}` unless a switch says otherwise. Switches are used up one request at a
time, in arrival order, and a pending stall is used before a pending failure: after
`stall_next(1); fail_next(1)` the first request is held and the second one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .server import ServerThread

__all__ = ["CallbackReceiver", "ReceivedCallback"]

_OK = b'{"ok": true}'
_REFUSED = b'{"ok": false}'
# Backstop only: stop() releases held requests first, so uvicorn never needs this long; without
# it a connection that never finishes would keep the server thread alive past ServerThread's join.
_SHUTDOWN_GRACE = 2


@dataclass(frozen=True, slots=True)
class ReceivedCallback:
    """One request as it reached the receiver."""

    method: str
    path: str
    query: str
    #: Lower-cased names; a repeated header's values are joined with ", ".
    headers: dict[str, str]
    #: Exactly the bytes received.
    body: bytes
    #: `time.time()` when the body had fully arrived.
    received_at: float
    #: The status the receiver answered, or 0 while held / when the client left before an answer.
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class _Ticket:
    """What the receiver decided for one request when it arrived."""

    position: int
    record: ReceivedCallback
    status: int
    hold: asyncio.Event | None


class CallbackReceiver:
    """Records every request to any path; can be told to fail or stall.

    Thread-safe: tests call it from their own thread while it serves in a uvicorn thread.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self._server = ServerThread(self._asgi_app(), host, port)
        self._server.server.config.timeout_graceful_shutdown = _SHUTDOWN_GRACE
        self._cond = threading.Condition()
        self._received: list[ReceivedCallback] = []
        self._failures: deque[int] = deque()
        self._stalls = 0
        self._held: list[asyncio.Event] = []
        self._stopping = False
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CallbackReceiver:
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Answer every held request, then shut the server down (bounded by ServerThread)."""
        with self._cond:
            # Set before releasing so a request arriving during shutdown is never held.
            self._stopping = True
            held, self._held = self._held, []
        self._wake(held)
        if self._started:
            self._server.stop()

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def url_for(self, path: str = "/callback") -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    # -- what arrived ----------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedCallback]:
        """A copy, in arrival order."""
        with self._cond:
            return list(self._received)

    def for_task(self, task_id: str) -> list[ReceivedCallback]:
        """Those whose body is a JSON object with `"taskId": task_id`."""
        return [record for record in self.received if _task_id(record) == task_id]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedCallback]:
        """Block until at least `count` requests arrived; return them, or fail after `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout):
                arrived = len(self._received)
                raise AssertionError(
                    f"expected {count} request(s) within {timeout} s, {arrived} arrived"
                )
            return list(self._received)

    # -- misbehaviour ----------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests `status` with `{"ok": false}`; calls queue up."""
        with self._cond:
            self._failures.extend([status] * count)

    def stall_next(self, count: int) -> None:
        """Hold the next `count` requests unanswered until `release()`, `reset()` or `stop()`."""
        with self._cond:
            self._stalls += count

    def release(self) -> None:
        """Let every held request answer 200 now."""
        with self._cond:
            held, self._held = self._held, []
        self._wake(held)

    def reset(self) -> None:
        """Forget what arrived and every pending switch; held requests answer 200."""
        with self._cond:
            self._received.clear()
            self._failures.clear()
            self._stalls = 0
            held, self._held = self._held, []
        self._wake(held)

    def _wake(self, held: list[asyncio.Event]) -> None:
        loop = self._server.loop
        if not held or loop is None:
            return
        # A closed loop means the server is gone, and its held requests with it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_set_all, held)

    # -- serving (runs on the server's event loop) -----------------------------------------

    def _asgi_app(self) -> ASGIApp:
        # A plain coroutine function: uvicorn mistakes a bound method for an ASGI 2 app.
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await self._handle(scope, receive, send)

        return app

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left mid-request: nothing arrived to record
        ticket = self._admit(scope, body)
        if ticket.hold is not None:
            if not await _released(ticket.hold, receive):
                return  # the client gave up; its record keeps answered=0
            self._mark_answered(ticket)
        await _respond(send, ticket.status)

    def _admit(self, scope: Scope, body: bytes) -> _Ticket:
        """Record the request and decide its answer in one step, so switches are used once."""
        with self._cond:
            hold = self._take_stall()
            status = 200 if hold is not None or not self._failures else self._failures.popleft()
            record = _record(scope, body, answered=0 if hold is not None else status)
            self._received.append(record)
            self._cond.notify_all()
            return _Ticket(len(self._received) - 1, record, status, hold)

    def _take_stall(self) -> asyncio.Event | None:
        if self._stalls == 0 or self._stopping:
            return None
        self._stalls -= 1
        hold = asyncio.Event()
        self._held.append(hold)
        return hold

    def _mark_answered(self, ticket: _Ticket) -> None:
        with self._cond:
            position = ticket.position
            # After reset() the slot is gone or holds a newer request: leave it alone.
            if position < len(self._received) and self._received[position] is ticket.record:
                self._received[position] = replace(ticket.record, answered=ticket.status)


def _task_id(record: ReceivedCallback) -> Any:
    try:
        payload = record.json()
    except ValueError:
        return None
    return payload.get("taskId") if isinstance(payload, dict) else None


def _record(scope: Scope, body: bytes, answered: int) -> ReceivedCallback:
    return ReceivedCallback(
        method=scope["method"],
        path=scope["path"],
        query=scope["query_string"].decode("latin-1"),
        headers=_headers(scope),
        body=body,
        received_at=time.time(),
        answered=answered,
    )


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _released(hold: asyncio.Event, receive: Receive) -> bool:
    """Wait for `hold`; False if the client disconnects first (then there is no one to answer)."""
    released = asyncio.ensure_future(hold.wait())
    left = asyncio.ensure_future(_disconnect(receive))
    done, pending = await asyncio.wait({released, left}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return left not in done


async def _disconnect(receive: Receive) -> None:
    # The body is already read, so the only message left to come is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(send: Send, status: int) -> None:
    body = _OK if status == 200 else _REFUSED
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _set_all(held: list[asyncio.Event]) -> None:
    for hold in held:
        hold.set()
