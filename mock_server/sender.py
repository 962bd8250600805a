"""A small keep-alive HTTP/1.1 client that only POSTs: how callbacks leave the fake.

Why not httpx: on the scheduler's loop, a POST through httpx's connection pool cost about 2 ms
of CPU, three quarters of that loop's time; writing the request head here and parsing the
answer with httptools (the C parser uvicorn uses) costs a few dozen microseconds. It does only
what callbacks need: no redirects, cookies, proxies, compression or HTTP/2, and the response
body is read only so the connection can be used again, never kept.

Errors besides `ValueError` (a URL or header it will not send) and the `OSError`s of the
network (refused, reset, unknown host, TLS):

    ConnectionError (builtin)
    └── ResponseError          the answer could not be used
        ├── NoAnswer           the server closed the connection before a whole answer
        └── InvalidResponse    not HTTP, or a head past `MAX_HEAD` bytes
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

import httptools

__all__ = ["MAX_BODY", "MAX_HEAD", "InvalidResponse", "NoAnswer", "ResponseError", "Sender"]

#: The most bytes of response head (informational answers included) read before refusing it.
MAX_HEAD = 64 * 1024
#: Past this many body bytes the body is not read on: the connection is closed instead.
MAX_BODY = 1024 * 1024

_READ = 64 * 1024
_CLOSE_WAIT = 5.0  # wall seconds aclose() waits for sockets to finish closing
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are in a request target; the rest is percent-encoded (as UTF-8).
_TARGET_SAFE = "/%:@!$&'()*+,;=-._~?"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
# The sender frames every request itself; a caller's copy would contradict it.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})

_Origin = tuple[str, str, int]


class ResponseError(ConnectionError):
    """The server's answer could not be used; the connection is closed."""


class NoAnswer(ResponseError):
    """The server closed the connection before sending a whole answer."""


class InvalidResponse(ResponseError):
    """What came back is not an HTTP/1.x response this sender can read."""


class _Unanswered(Exception):
    """Internal: `error` happened before any byte of the answer, so a reused connection may
    simply have been closed by the server while idle."""

    def __init__(self, error: ConnectionError) -> None:
        super().__init__(str(error))
        self.error = error


class Sender:
    """POSTs bytes over keep-alive HTTP/1.1 connections, keeping at most `limit` idle ones per
    origin (scheme, host, port) for the next request.

        sender = Sender(limit=64)
        status = await sender.post(url, body, {"Content-Type": "application/json"})
        await sender.aclose()

    Use it from one event loop. Timeouts are the caller's (`asyncio.timeout`): a post cancelled
    at any point closes its connection, so the pool only ever holds connections between answers.
    `aclose()` closes the idle connections; one still in use is closed when its post ends.
    """

    def __init__(self, limit: int = 16) -> None:
        if limit < 0:
            raise ValueError("limit: must be 0 or more")
        self.limit = limit
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
    ) -> int:
        """POST `body` to `url` and return the answer's status code.

        A connection kept from an earlier post that fails before
        the first byte of an answer (the server closed it while idle) is replaced once by a new
        one; any other failure is raised.
        """
        target = _target(url)
        request = _head(target, headers, len(body)) + body
        idle = self._take_idle(target.origin)
        if idle is not None:
            # Unanswered on a kept connection: the server closed it while idle, most likely;
            # once more on a fresh one.
            with contextlib.suppress(_Unanswered):
                return await self._use(target.origin, idle, request)
        fresh = await self._connect(target)
        try:
            return await self._use(target.origin, fresh, request)
        except _Unanswered as unanswered:
            raise unanswered.error from None

    async def aclose(self) -> None:
        """Close every idle connection, and keep none from now on."""
        self._closed = True
        connections = [conn for pool in self._idle.values() for conn in pool]
        self._idle.clear()
        for conn in connections:
            conn.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT):
                await asyncio.gather(*(c.wait_closed() for c in connections))

    # -- connections ------------------------------------------------------------------------

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        pool = self._idle.get(origin, [])
        while pool:  # shrinks every turn
            conn = pool.pop()  # the most recently used is the least likely to be stale
            if conn.idle_and_open():
                return conn
            conn.close()
        return None

    def _release(self, origin: _Origin, conn: _Connection) -> None:
        pool = self._idle.setdefault(origin, [])
        if self._closed or len(pool) >= self.limit:
            conn.close()
        else:
            pool.append(conn)

    async def _connect(self, target: _Target) -> _Connection:
        tls = self._tls() if target.scheme == "https" else None
        reader, writer = await asyncio.open_connection(
            target.host,
            target.port,
            ssl=tls,
            server_hostname=target.host if tls is not None else None,
            limit=_READ,
        )
        return _Connection(reader, writer)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:  # loading the CA store is slow: once, and only if https is used
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _use(self, origin: _Origin, conn: _Connection, request: bytes) -> int:
        """One exchange; the connection goes back to the pool only after a whole answer that
        lets it be kept. Any failure, cancellation included, closes it."""
        try:
            status, reusable = await _exchange(conn, request)
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._release(origin, conn)
        else:
            conn.close()
        return status


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def idle_and_open(self) -> bool:
        # Bytes buffered while idle (an unasked-for "408" before a close, say) would be taken
        # for the next answer. StreamReader has no public way to peek at its buffer.
        buffered = getattr(self.reader, "_buffer", b"")
        return not (self.writer.is_closing() or self.reader.at_eof() or buffered)

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def _exchange(conn: _Connection, request: bytes) -> tuple[int, bool]:
    """Write `request`, read its answer: (status, whether the connection can be kept)."""
    try:
        conn.writer.write(request)
        await conn.writer.drain()
    except ConnectionError as exc:
        raise _Unanswered(exc) from exc
    return await _read_answer(conn.reader)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    answer = _Answer()
    received = 0
    # Bounded: each turn reads at least one byte, and at most MAX_HEAD + MAX_BODY are read.
    while not answer.complete:
        try:
            data = await reader.read(_READ)
        except ConnectionError as exc:
            if received == 0:
                raise _Unanswered(exc) from exc
            raise
        if not data:
            return answer.at_eof(received)
        received += len(data)
        answer.feed(data)
        if answer.status is None and received > MAX_HEAD:
            raise InvalidResponse(f"invalid HTTP response: head longer than {MAX_HEAD} bytes")
        if answer.status is not None and received > MAX_HEAD + MAX_BODY:
            return answer.status, False  # the rest of a body nobody reads: close instead
    return answer.result()


class _Answer:
    """httptools' callbacks for one answer, informational (1xx) ones skipped."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status: int | None = None  # of the final answer, once its head is complete
        self.complete = False
        self._framed = False  # Content-Length or chunked: the body does not end at EOF
        self._keep_alive = False

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise InvalidResponse("invalid HTTP response: 101 Switching Protocols") from None
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise InvalidResponse(f"invalid HTTP response: {exc}") from exc
            self._keep_alive = False  # bytes after the answer: this connection is not in step

    def at_eof(self, received: int) -> tuple[int, bool]:
        if received == 0:
            raise _Unanswered(NoAnswer("the server closed the connection without an answer"))
        if self.status is not None and not self._framed:
            return self.status, False  # a body delimited by the end of the connection
        raise NoAnswer(f"the server closed the connection in mid-answer ({received} bytes read)")

    def result(self) -> tuple[int, bool]:
        assert self.status is not None  # complete implies a final head
        return self.status, self._keep_alive

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # a second answer to one request
            self._keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (
            name == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked")
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status >= 200 or status == 101:  # 101 stays: feed() refuses the upgrade
            self.status = status
        else:
            self._framed = False  # the headers of an informational answer say nothing more

    def on_message_complete(self) -> None:
        if self.status is not None and not self.complete:
            self.complete = True
            self._keep_alive = self._parser.should_keep_alive()


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str  # to connect to: no brackets around an IPv6 address
    port: int
    authority: str  # the Host header
    path: str  # the request target: path and query

    @property
    def origin(self) -> _Origin:
        return self.scheme, self.host, self.port


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"cannot POST to {url[:200]!r}: the scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"cannot POST to {url[:200]!r}: it has no host")
    port = parts.port  # raises ValueError for a port out of range or not a number
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return _Target(
        scheme=parts.scheme,
        host=parts.hostname,
        port=_DEFAULT_PORTS[parts.scheme] if port is None else port,
        authority=_authority(parts),
        path=path,
    )


def _authority(parts: SplitResult) -> str:
    """The Host header: the URL's host and port as written, without any user info."""
    authority = parts.netloc.rpartition("@")[2]
    if authority.isascii():
        return authority
    host = (parts.hostname or "").encode("idna").decode("ascii")  # UnicodeError: a ValueError
    return host if parts.port is None else f"{host}:{parts.port}"


def _head(target: _Target, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.authority}"]
    for name, value in headers.items():
        _check_header(name, value)
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    if _FORBIDDEN_IN_VALUE.search(target.authority):
        raise ValueError(f"the URL's host {target.authority[:100]!r} contains CR, LF or NUL")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a header has a character outside Latin-1: {exc}") from None


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name {name[:100]!r}: not a valid name (CR, LF, space, ':'?)")
    if name.lower() in _OWN_HEADERS:
        raise ValueError(f"header {name!r}: set by the sender itself")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValueError(f"header {name!r}: the value contains CR, LF or NUL")
