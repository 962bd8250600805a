"""What happens to every request before the routes see it, as plain ASGI middleware.

Outermost first: `BodyGuardMiddleware` bounds every request body in size and time, and closes
the connection after an answer sent before the body was read whole; `JournalMiddleware` records
the request and its answer; `RateLimitMiddleware` counts it and stamps `X-RateLimit-*`;
`FaultMiddleware` applies a matching rule's (or the chaos settings') HTTP fault: an error
answer, a delay, a hang or a dropped connection. The control API under `/_mock/` passes through
the last three untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .backend import Backend, staged_error
from .bodies import RequestTimeout, error_response, too_large
from .errors import MockError
from .ratelimit import RateLimiter
from .rules import Delay, DropConnection, Hang, HttpFault, RequestAction, RequestFacts

__all__ = [
    "BodyGuardMiddleware",
    "ConnectionDropped",
    "FaultMiddleware",
    "JournalMiddleware",
    "RateLimitMiddleware",
    "quiet_drops",
]

_JOURNAL_BODY = 64 * 1024


class ConnectionDropped(Exception):
    """Raised on purpose after a partial answer, so the server closes the connection."""


async def _answer(
    error: MockError, extra: list[tuple[bytes, bytes]], scope: Scope, receive: Receive, send: Send
) -> None:
    response = error_response(error)
    response.raw_headers.extend(extra)
    await response(scope, receive, send)


def _is_api(scope: Scope) -> bool:
    return scope["type"] == "http" and str(scope["path"]).startswith("/v1/")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, key = headers.get("authorization", "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


# -- request bodies ------------------------------------------------------------------------------


class BodyGuardMiddleware:
    """Every request body, on every route: at most `limit` bytes (413) and at most `timeout`
    seconds spent waiting for the client to send it (408), both raised from `receive()` so the
    route's handlers answer them. An answer that starts before the body was read whole says
    `Connection: close`, so the server stops reading what nobody will look at."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _GuardedBody(receive, _has_body(scope), self.limit, self.timeout)
        started = False

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if body.pending:
                    message = dict(message)
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, body.receive, send_closing)
        except MockError as error:  # raised from receive() outside a route's handlers
            if started:
                raise
            await _answer(error, [], scope, receive, send_closing)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class _GuardedBody:
    """`receive()` for one request, counting its body's bytes and the time spent waiting."""

    def __init__(self, receive: Receive, pending: bool, limit: int, timeout: float) -> None:
        self._receive = receive
        self.pending = pending
        self._limit = limit
        self._timeout = timeout
        self._size = 0
        self._waited = 0.0
        self._failed = False

    async def receive(self) -> Message:
        if self._failed:
            return {"type": "http.disconnect"}  # what is left of the request is not read
        if not self.pending:
            return await self._receive()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self._timeout - self._waited):
                message = await self._receive()
        except TimeoutError:
            self._failed = True
            raise RequestTimeout(f"body: not received within {self._timeout:g} s") from None
        finally:
            self._waited += loop.time() - started
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            self.pending = bool(message.get("more_body", False))
            if self._size > self._limit:
                self._failed = True
                raise too_large(self._limit)
        return message


# -- journal -------------------------------------------------------------------------------------


class JournalMiddleware:
    """Records every request but the control API's in the backend's journal."""

    def __init__(self, app: ASGIApp, backend: Backend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_mock"):
            await self.app(scope, receive, send)
            return
        at, started = self.backend.clock.now(), time.perf_counter()
        body = bytearray()
        status = 0
        recorded = False
        state: dict[str, Any] = scope.setdefault("state", {})

        def record(final: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            headers = _headers(scope)
            self.backend.journal.record(
                at=at,
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=bytes(body),
                status=final,
                task_id=state.get("task_id"),
                api_key=_bearer(headers),
                duration_ms=(time.perf_counter() - started) * 1000,
            )

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _JOURNAL_BODY:
                body.extend(message.get("body", b"")[: _JOURNAL_BODY - len(body)])
            return message

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # In the journal before the client has its answer, so a client (or a test)
                # reading the journal right after a request always finds it.
                record(status)
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_note)
        except ConnectionDropped:
            record(0)  # a staged drop or hang: the client got no answer
            raise
        finally:
            record(status or 500)


# -- rate limits -------------------------------------------------------------------------------


class RateLimitMiddleware:
    """Counts every `/v1` request against its key and stamps the `X-RateLimit-*` headers."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_api(scope):
            await self.app(scope, receive, send)
            return
        bucket = _bucket(scope)
        headers, refusal = self.limiter.admit(bucket)
        if refusal is not None:
            await _answer(refusal, headers, scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self.limiter.release(bucket)


def _bucket(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            key: str = value.decode("latin-1").partition(" ")[2].strip()
            return key
    client = scope.get("client") or ("unknown", 0)
    return f"address:{client[0]}"


# -- faults ------------------------------------------------------------------------------------


class FaultMiddleware:
    """Applies the first matching request rule (or a chaos draw) to `/v1` requests."""

    def __init__(self, app: ASGIApp, backend: Backend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rules, chaos = self.backend.rules, self.backend.config.chaos
        if not _is_api(scope) or not (rules.has_request_rules or chaos.active):
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
