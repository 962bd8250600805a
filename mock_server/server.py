"""Run an app under a real uvicorn server in a background thread, on a free loopback port, with
every connection bounded in time and size.

with ServerThread(create_app()) as server:
    httpx.get(server.url + "/v1/tasks")

uvicorn bounds the idle time between requests (`timeout_keep_alive`) but nothing before the
first one, nor a request line and headers trickled in a byte at a time, nor their size when
httptools parses them. `GuardedHttpToolsProtocol` adds what is missing: the request line and
headers must arrive whole within `ServerLimits.header_timeout` of the connection opening (or of
their first byte, on a kept-alive connection) and within `max_header_bytes`; otherwise the
connection is answered 408 or 431 in HiAPI's envelope and closed. Request bodies are bounded by
the app itself (`middleware.GateMiddleware`), which knows when it is waiting for one.
"""

from __future__ import annotations

import asyncio
import gc
import http
import json
import socket
import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "GuardedHttpToolsProtocol",
    "ServerLimits",
    "ServerThread",
    "free_port",
    "freeze_survivors",
    "guarded_protocol",
    "uvicorn_config",
]

_START_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How long and how large a client may take to send a request's line and headers, and how
    long an idle kept-alive connection stays open (whole seconds, as uvicorn takes it)."""

    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    keep_alive: int = 5

    def __post_init__(self) -> None:
        if not self.header_timeout > 0 or self.max_header_bytes < 1024 or self.keep_alive < 1:
            raise ValueError(
                "limits: header_timeout > 0, max_header_bytes >= 1024, keep_alive >= 1"
            )


#: Collection thresholds when serving: small generations, so each collection walks few objects.
SERVING_GC_THRESHOLDS = (300, 5, 1)


def freeze_survivors() -> None:
    """For a process that does nothing but serve the fake (`hiapi-mock serve`): whatever
    survives a full garbage collection (modules, the spec, the tasks held) is frozen out of the
    later ones, and the generations are small, so every collection walks few objects.

    With Python's defaults a full collection walks every task held, so its pause grows with
    the store (172 ms at 200,000 tasks), and the middle generation holds up to 7,000 objects.
    Under wrk's POST load (bench/profile.md) the longest pauses were 2.1 ms (middle) and 10-29
    ms (full); with this 0.9 ms and under 2 ms, for the same total time, and the POST p99 went
    from 11.7-11.9 ms to 8.3-8.4 ms. Not for a process the fake shares with other code (a test
    run): a frozen object that later becomes part of a garbage cycle is never collected.
    """
    if _freeze_after_full not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full)
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    gc.collect()  # what is alive now is frozen at once


def _freeze_after_full(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request head past the limit."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on each request's head, and
    its own refusals in HiAPI's envelope, sent after the answers already owed on the connection
    (pipelined requests), never in the middle of one."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # a request's head has begun and is not complete
        self._head_bytes = 0
        self._refusal: bytes | None = None  # owed once the answers in flight are out

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: what follows is not read
        super().data_received(data)
        if self._in_head and self._refusal is None and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse_too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            raise _HeadTooLarge  # httptools stops and uvicorn calls send_400_response
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not self._answering():
            self._send_refusal()

    def send_400_response(self, msg: str) -> None:
        # Called by uvicorn inside its `except HttpParserError`, so the parser's reason is at hand.
        reason = sys.exc_info()[1]
        if isinstance(reason and reason.__context__, _HeadTooLarge):
            self._refuse_too_large()
            return
        detail = str(reason).strip() if reason is not None else ""
        self._refuse(400, "INVALID_REQUEST", f"invalid HTTP request: {(detail or msg)[:200]}")

    def _unsupported_upgrade_warning(self) -> None:
        # An `Upgrade` request is answered as plain HTTP (the fake has no WebSockets). The parser
        # reads nothing after it, so the connection cannot carry another request: close it once
        # answered, or a client sending bytes now and then would hold it open for ever.
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif not self.transport.is_closing():
            self.transport.close()

    # -- helpers ----------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._refusal is not None:
            return
        if not self._in_head:
            self.transport.close()  # connected, but not a byte of a request: just close
            return
        timeout = self.limits.header_timeout
        message = f"request line and headers: not complete within {timeout:g} s"
        self._refuse(408, "REQUEST_TIMEOUT", message)

    def _refuse_too_large(self) -> None:
        limit = self.limits.max_header_bytes // 1024
        message = f"request line and headers: larger than the {limit} KB limit"
        self._refuse(431, "REQUEST_HEADERS_TOO_LARGE", message)

    def _answering(self) -> bool:
        """Whether answers are still owed before a refusal may go out: pipelined requests, or
        one whose answer has started or whose body has arrived whole."""
        cycle = self.cycle
        owed = cycle is not None and not cycle.response_complete and not cycle.disconnected
        return bool(self.pipeline) or (
            owed and cycle is not None and (cycle.response_started or not cycle.more_body)
        )

    def _refuse(self, status: int, error_code: str, message: str) -> None:
        """Answer `status` in HiAPI's envelope and close the connection, once the answers owed
        on it are out."""
        self._disarm_head_timer()
        envelope = {"code": status, "message": message, "data": None, "error_code": error_code}
        body = json.dumps(envelope).encode()
        phrase = http.HTTPStatus(status).phrase
        head = [f"HTTP/1.1 {status} {phrase}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        self._refusal = b"\r\n".join(head) + b"\r\n\r\n" + body
        if status != 400:  # uvicorn logs its own parse errors
            self.logger.warning("refused a request with %d: %s", status, message)
        if not self._answering():
            self._send_refusal()

    def _send_refusal(self) -> None:
        if self._refusal is not None and not self.transport.is_closing():
            self.transport.write(self._refusal)
            self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedHttpToolsProtocol]:
    """The guarded protocol class bound to `limits`, for `uvicorn.Config(http=...)`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def uvicorn_config(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    limits: ServerLimits | None = None,
    **options: Any,
) -> uvicorn.Config:
    """A uvicorn configuration serving `app` with the guarded protocol and `limits`.

    WebSockets are off (the fake has none: an `Upgrade` request is answered as plain HTTP), and
    the lifespan too (the fake's state lives on the app object). `options` go to uvicorn as is.
    """
    limits = limits or ServerLimits()
    settings: dict[str, Any] = {
        "http": guarded_protocol(limits),
        "ws": "none",
        "lifespan": "off",
        "timeout_keep_alive": limits.keep_alive,
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "log_level": "warning",
    }
    return uvicorn.Config(app, host=host, port=port, **(settings | options))


class ServerThread:
    """A uvicorn server for `app` on `host:port` (a free port by default), in a daemon thread.

    Errors raised while serving are logged by uvicorn and the app turns them into 500s; the
    thread itself re-raises a failure to start.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        limits: ServerLimits | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.limits = limits or ServerLimits()
        self.server = uvicorn.Server(uvicorn_config(app, self.host, self.port, limits=self.limits))
        self._thread = threading.Thread(target=self._run, name=f"uvicorn:{self.port}", daemon=True)
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve()

    def start(self) -> ServerThread:
        self._thread.start()
        started = threading.Event()

        def ready() -> bool:
            return self.server.started or not self._thread.is_alive()

        # Poll a flag uvicorn sets; bounded by _START_TIMEOUT.
        for _ in range(int(_START_TIMEOUT / 0.01)):
            if ready():
                break
            started.wait(0.01)
        if self._error is not None or not self.server.started:
            self.stop()
            raise RuntimeError(f"uvicorn did not start on {self.url}") from self._error
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=_START_TIMEOUT)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
