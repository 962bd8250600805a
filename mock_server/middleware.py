"""What happens to every request before the routes see it, as one plain ASGI middleware.

`GateMiddleware` bounds every request body in size and time (and closes the connection after
an answer sent before the body was read whole), records the request and its answer in the
journal, counts `/v1` requests against their key and stamps `X-RateLimit-*`, and applies a
matching rule's (or the chaos settings') HTTP fault to them: an error answer, a delay, a hang
or a dropped connection. The control API under `/_mock/` is neither journaled, counted nor
faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .backend import Backend, staged_error
from .bodies import RequestTimeout, error_response, too_large
from .errors import MockError
from .rules import Delay, DropConnection, Hang, HttpFault, RequestAction, RequestFacts

__all__ = ["ConnectionDropped", "GateMiddleware", "quiet_drops"]

_JOURNAL_BODY = 64 * 1024


class ConnectionDropped(Exception):
    """Raised on purpose after a partial answer, so the server closes the connection."""


async def _answer(
    error: MockError, extra: list[tuple[bytes, bytes]], scope: Scope, receive: Receive, send: Send
) -> None:
    response = error_response(error)
    response.raw_headers.extend(extra)
    await response(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, key = headers.get("authorization", "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


# -- the gate ------------------------------------------------------------------------------------


class GateMiddleware:
    """Every request passes here once, on its way to the routes: its body is guarded, it is
    journaled, counted against its key's rate limit, and a staged fault may take its place.

    One layer rather than four: each ASGI layer wraps `receive` and `send` again, and on this
    path that wrapping cost more than the routes themselves (measured in bench/).
    """

    def __init__(self, app: ASGIApp, backend: Backend, body_timeout: float) -> None:
        self.app = app
        self.backend = backend
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        exchange = _Exchange(self.backend, scope, receive, send, self.body_timeout)
        try:
            if path.startswith("/v1/"):
                await self._api(scope, exchange)
            else:
                await self.app(scope, exchange.receive, exchange.send)
        except ConnectionDropped:
            exchange.record(0)  # a staged drop or hang: the client got no answer
            raise
        except MockError as error:  # raised from receive() outside a route's handlers
            if exchange.started:
                raise
            await _answer(error, [], scope, exchange.receive, exchange.send)
        finally:
            exchange.record(exchange.status or 500)

    async def _api(self, scope: Scope, exchange: _Exchange) -> None:
        limiter = self.backend.limiter
        bucket = _bucket(exchange.authorization, scope)
        headers, refusal = limiter.admit(bucket)
        if refusal is not None:
            await _answer(refusal, headers, scope, exchange.receive, exchange.send)
            return
        exchange.extra_headers = headers
        try:
            await self._fault_or_app(scope, exchange)
        finally:
            limiter.release(bucket)

    async def _fault_or_app(self, scope: Scope, exchange: _Exchange) -> None:
        """The first matching request rule (or a chaos draw) acts instead of the routes."""
        rules, chaos = self.backend.rules, self.backend.config.chaos
        receive: Receive = exchange.receive
        send: Send = exchange.send
        if not (rules.has_request_rules or chaos.active):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        facts = RequestFacts(scope["method"], scope["path"], headers, _bearer(headers))
        if rules.need_body and scope["method"] == "POST" and scope["path"] == "/v1/tasks":
            try:
                facts, receive = await self._with_body(facts, receive)
            except MockError as error:  # the body was too large or too slow
                await _answer(error, [], scope, receive, send)
                return
        action = rules.take_request_action(facts) or self._chaos()
        if action is None:
            await self.app(scope, receive, send)
        else:
            await self._act(action, scope, receive, send)

    async def _with_body(
        self, facts: RequestFacts, receive: Receive
    ) -> tuple[RequestFacts, Receive]:
        """Read the body to match model, route and prompt, and hand it on unread."""
        limit = self.backend.config.max_body_bytes
        messages: list[Message] = []
        size, more = 0, True
        while more and size <= limit:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)
        if size <= limit and not more:
            facts = _body_facts(facts, b"".join(m.get("body", b"") for m in messages))

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return facts, replay

    def _chaos(self) -> HttpFault | None:
        chaos, draw = self.backend.config.chaos, self.backend.chaos_random
        if not chaos.active:
            return None
        roll = draw.random()
        if roll < chaos.rate_429:
            return HttpFault(429, retry_after=draw.randint(1, 10))
        if roll < chaos.rate_429 + chaos.rate_503:
            return HttpFault(503, retry_after=draw.randint(1, 10))
        return None

    async def _act(self, action: RequestAction, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(action, HttpFault):
            await _answer(staged_error(action), [], scope, receive, send)
        elif isinstance(action, Delay):
            await asyncio.sleep(action.seconds)
            await self.app(scope, receive, send)
        elif isinstance(action, Hang):
            await _until_disconnect(receive, action.seconds)
            await _drop(send)
        else:
            assert isinstance(action, DropConnection)
            await _drop(send)


class _Exchange:
    """One request's `receive` and `send` as the gate hands them on.

    `receive` bounds the body: at most the configured bytes (413) and seconds spent waiting
    for the client to send it (408), raised so the route's handlers answer them; it keeps the
    first 64 KiB for the journal. `send` adds the rate-limit headers, and `Connection: close`
    to an answer that starts before the body was read whole (so the server stops reading what
    nobody will look at); the journal records the request as the last body part goes out, so
    a client (or a test) reading the journal right after its answer always finds it.
    """

    __slots__ = (
        "_at", "_backend", "_body", "_failed", "_journaled", "_limit", "_receive", "_recorded",
        "_scope", "_send", "_size", "_started_at", "_timeout", "_waited", "authorization",
        "extra_headers", "pending", "started", "status",
    )  # fmt: skip

    def __init__(
        self, backend: Backend, scope: Scope, receive: Receive, send: Send, timeout: float
    ) -> None:
        self._backend, self._scope, self._receive, self._send = backend, scope, receive, send
        self._limit, self._timeout = backend.config.max_body_bytes, timeout
        self._journaled = not scope["path"].startswith("/_mock")
        self._at, self._started_at = backend.clock.now(), time.perf_counter()
        self._body = bytearray()
        self._size, self._waited = 0, 0.0
        self._failed = self._recorded = self.started = False
        self.pending, self.authorization = _read_head(scope)
        self.status = 0
        self.extra_headers: list[tuple[bytes, bytes]] = []
        scope.setdefault("state", {})

    async def receive(self) -> Message:
        if self._failed:
            return {"type": "http.disconnect"}  # what is left of the request is not read
        if not self.pending:
            return await self._receive()
        message = await (self._receive() if _arrived(self._receive) else self._receive_in_time())
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            self._size += len(chunk)
            self.pending = bool(message.get("more_body", False))
            if self._size > self._limit:
                self._failed = True
                raise too_large(self._limit)
            if self._journaled and len(self._body) < _JOURNAL_BODY:
                self._body.extend(chunk[: _JOURNAL_BODY - len(self._body)])
        return message

    async def _receive_in_time(self) -> Message:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self._timeout - self._waited):
                return await self._receive()
        except TimeoutError:
            self._failed = True
            raise RequestTimeout(f"body: not received within {self._timeout:g} s") from None
        finally:
            self._waited += loop.time() - started

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started, self.status = True, message["status"]
            extra = self.extra_headers
            if self.pending:
                extra = [*extra, (b"connection", b"close")]
            if extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            self.record(self.status)
        await self._send(message)

    def record(self, status: int) -> None:
        """Into the journal, once (control API requests stay out)."""
        if self._recorded or not self._journaled:
            return
        self._recorded = True
        duration_ms = (time.perf_counter() - self._started_at) * 1000
        task_id = self._scope["state"].get("task_id")
        self._backend.journal.record_asgi(
            self._at, self._scope, bytes(self._body), status, task_id, duration_ms
        )


def _arrived(receive: Receive) -> bool:
    """Whether `receive()` answers without waiting: uvicorn's request cycle sets its message
    event once body bytes are in hand. Then no timer is needed (setting and clearing one cost
    as much as the rest of the gate); any other server's `receive` is always timed."""
    event = getattr(getattr(receive, "__self__", None), "message_event", None)
    return isinstance(event, asyncio.Event) and event.is_set()


def _read_head(scope: Scope) -> tuple[bool, bytes | None]:
    """Whether a body follows the head, and the Authorization header: one pass over it."""
    pending, authorization = False, None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = authorization or value  # the first, as the journal shows it
        elif name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            pending = True
    return pending, authorization


def _bucket(authorization: bytes | None, scope: Scope) -> str:
    """What a request's rate limit counts against: its key, or its address without one."""
    if authorization is not None:
        return authorization.decode("latin-1").partition(" ")[2].strip()
    client = scope.get("client") or ("unknown", 0)
    return f"address:{client[0]}"


def _body_facts(facts: RequestFacts, raw: bytes) -> RequestFacts:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return facts
    if not isinstance(body, dict):
        return facts
    params = body.get("input")
    prompt = params.get("prompt") if isinstance(params, dict) else None
    model, route = body.get("model"), body.get("route")
    return RequestFacts(
        facts.method,
        facts.path,
        facts.headers,
        facts.api_key,
        model if isinstance(model, str) else None,
        route if isinstance(route, str) and route else None,
        prompt if isinstance(prompt, str) else None,
    )


async def _until_disconnect(receive: Receive, seconds: float) -> None:
    async def listen() -> None:
        with contextlib.suppress(MockError):  # a body too large or too slow: stop listening
            while (await receive())["type"] != "http.disconnect":
                pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listen(), seconds)


async def _drop(send: Send) -> None:
    # ASGI has no "close the socket": promise a body, send none, and fail, so the server
    # closes the connection and the client sees it cut mid-answer.
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
    await send(start)
    raise ConnectionDropped("connection dropped on purpose")


class _QuietDrops(logging.Filter):
    """Keeps deliberate drops out of the server's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ConnectionDropped)


def quiet_drops() -> None:
    for name in ("uvicorn.error", "hiapi_mock"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietDrops) for f in logger.filters):
            logger.addFilter(_QuietDrops())
