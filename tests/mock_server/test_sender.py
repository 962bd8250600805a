"""The callback sender over real sockets on 127.0.0.1: what arrives, how connections are kept
and dropped, and how each way a server can misbehave comes back to the caller."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from mock_server.receiver import CallbackReceiver
from mock_server.sender import MAX_BODY, MAX_HEAD, InvalidResponse, NoAnswer, Sender, _target
from mock_server.server import free_port

#: Every wait in these tests is bounded by this (wall seconds).
BOUND = 10.0
#: The most requests one test server connection answers: every server loop ends.
MAX_REQUESTS = 100
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
BODY = b'{"taskId": "t-1", "prompt": "caf\xc3\xa9 \xf0\x9f\x8d\x8c"}'
HEADERS = {"Content-Type": "application/json", "X-HiAPI-Signature": "abc123"}

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a test's coroutine on a fresh loop, the whole of it bounded."""
    return asyncio.run(asyncio.wait_for(main, BOUND))


async def within(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, BOUND)


# -- a tiny server for behaviours uvicorn never shows ----------------------------------------


@dataclass
class Server:
    url: str
    accepted: int = 0
    #: Requests read, as (head, body), in arrival order.
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: Set each time a connection's handler has ended (the client closed, or the server did).
    ended: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    errors: list[BaseException] = field(default_factory=list)


@contextlib.asynccontextmanager
async def serve(handler: Callable[[Server, int], Handler]) -> AsyncIterator[Server]:
    """An asyncio server on a free port; `handler(server, n)` serves its n-th connection
    (1-based). A handler's exception fails the test when the block ends."""
    tasks: list[asyncio.Task[Any]] = []
    info = Server(url="")

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info.accepted += 1
        number = info.accepted
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        try:
            await handler(info, number)(reader, writer)
        except Exception as exc:
            info.errors.append(exc)
        finally:
            writer.close()
            info.ended.put_nowait(number)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    info.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/a?x=1"
    try:
        yield info
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await within(asyncio.gather(*tasks, return_exceptions=True))
        await within(server.wait_closed())
    assert info.errors == []


@contextlib.asynccontextmanager
async def sending(limit: int = 16) -> AsyncIterator[Sender]:
    sender = Sender(limit=limit)
    try:
        yield sender
    finally:
        await within(sender.aclose())


async def read_request(server: Server, reader: asyncio.StreamReader) -> bool:
    """Read one whole request into `server.requests`; False if the client closed instead."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    found = re.search(rb"(?im)^content-length:\s*(\d+)\r$", head)
    body = await reader.readexactly(int(found[1])) if found else b""
    server.requests.append((head, body))
    return True


def answering(*answers: bytes, close: bool = False) -> Callable[[Server, int], Handler]:
    """Answer each request with the next of `answers` (the last one repeats); `close` ends the
    connection after each answer."""

    def for_connection(server: Server, number: int) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for index in range(MAX_REQUESTS):
                if not await read_request(server, reader):
                    return
                writer.write(answers[min(index, len(answers) - 1)])
                await writer.drain()
                if close:
                    return

        return handle

    return for_connection


# -- what arrives, what comes back -----------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("status", [200, 404, 500])
def test_a_post_arrives_whole_and_its_status_comes_back(status: int) -> None:
    with CallbackReceiver() as receiver:
        if status != 200:
            receiver.fail_next(1, status=status)

        async def main() -> int:
            async with sending() as sender:
                return await sender.post(receiver.url_for("/hooks/a?attempt=1"), BODY, HEADERS)

        assert run(main()) == status
        (record,) = receiver.wait_for(1, BOUND)
    assert (record.method, record.path, record.query) == ("POST", "/hooks/a", "attempt=1")
    assert record.body == BODY
    assert record.headers["content-type"] == "application/json"
    assert record.headers["x-hiapi-signature"] == "abc123"
    assert record.headers["content-length"] == str(len(BODY))
    assert record.headers["host"] == receiver.url.removeprefix("http://")
    assert record.answered == status


def test_the_request_head_is_exactly_what_was_asked() -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server, sending() as sender:
            port = server.url.split(":")[2].split("/")[0]
            url = f"http://user:secret@127.0.0.1:{port}/a b/caf\u00e9?q=%C3%A9&r=1#fragment"
            assert await within(sender.post(url, b"{}", {"X-One": "1"})) == 200
            (head, body), *_ = server.requests
            assert head == (
                b"POST /a%20b/caf%C3%A9?q=%C3%A9&r=1 HTTP/1.1\r\n"
                + f"Host: 127.0.0.1:{port}\r\n".encode()
                + b"X-One: 1\r\nContent-Length: 2\r\n\r\n"
            )
            assert body == b"{}"

    run(main())


def test_the_host_header_keeps_brackets_and_ports_as_written() -> None:
    # Only 127.0.0.1 is reachable in tests: these are checked without connecting.
    assert _target("http://[::1]:8080/x").authority == "[::1]:8080"
    assert _target("http://[::1]:8080/x").host == "::1"
    assert _target("https://u:p@Example.com/x").authority == "Example.com"
    assert _target("https://bücher.example/x").authority == "xn--bcher-kva.example"
    assert _target("https://h.example").path == "/"
    assert _target("https://h.example").port == 443


# -- keeping connections -----------------------------------------------------------------------


def test_sequential_posts_use_one_connection() -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server, sending() as sender:
            statuses = [await within(sender.post(server.url, BODY, HEADERS)) for _ in range(20)]
            assert statuses == [200] * 20
            assert server.accepted == 1
            assert [body for _, body in server.requests] == [BODY] * 20

    run(main())


def test_at_most_limit_idle_connections_are_kept() -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server, sending(limit=2) as sender:
            for _ in range(2):  # four at once: two kept, two new each time
                await within(asyncio.gather(*(sender.post(server.url, b"", {}) for _ in range(4))))
            assert server.accepted == 6

    run(main())


def test_aclose_closes_idle_connections() -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server:
            sender = Sender()
            assert await within(sender.post(server.url, b"", {})) == 200
            await within(sender.aclose())
            assert await within(server.ended.get()) == 1  # the server saw the client leave

    run(main())


def test_a_connection_close_answer_is_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def main() -> None:
        async with serve(answering(answer)) as server, sending() as sender:
            for _ in range(3):
                assert await within(sender.post(server.url, b"", {})) == 200
            assert server.accepted == 3

    run(main())


def test_a_server_that_closes_after_answering_gets_a_new_connection() -> None:
    async def main() -> None:
        async with serve(answering(OK, close=True)) as server, sending() as sender:
            assert await within(sender.post(server.url, b"", {})) == 200
            assert await within(server.ended.get()) == 1  # closed, without saying so
            assert await within(sender.post(server.url, b"", {})) == 200
            assert server.accepted == 2

    run(main())


def test_a_kept_connection_closed_on_the_next_request_is_retried_once_on_a_new_one() -> None:
    def first_answer_only(server: Server, number: int) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for _ in range(2):
                if not await read_request(server, reader):
                    return
                if number == 1 and len(server.requests) == 2:
                    return  # the second request on the first connection: closed unanswered
                writer.write(OK)
                await writer.drain()

        return handle

    async def main() -> None:
        async with serve(first_answer_only) as server, sending() as sender:
            assert await within(sender.post(server.url, b"1", {})) == 200
            assert await within(sender.post(server.url, b"2", {})) == 200
            assert server.accepted == 2
            assert [body for _, body in server.requests] == [b"1", b"2", b"2"]

    run(main())


# -- answers of every shape ----------------------------------------------------------------


_CHUNKED = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
)
_UNFRAMED = b"HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\n\r\nuntil the end"
_HTTP_1_0 = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
_EARLY = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"


@pytest.mark.parametrize(
    ("answer", "close", "status", "connections"),
    [
        pytest.param(_CHUNKED, False, 201, 1, id="chunked: read whole, connection kept"),
        pytest.param(_UNFRAMED, True, 202, 2, id="no length: ends with the connection"),
        pytest.param(_HTTP_1_0, False, 200, 2, id="HTTP/1.0: connection not kept"),
        pytest.param(_EARLY + OK, False, 200, 1, id="informational answers skipped"),
    ],
)
def test_answers_of_every_shape_are_read_and_kept_only_when_they_may_be(
    answer: bytes, close: bool, status: int, connections: int
) -> None:
    async def main() -> None:
        async with serve(answering(answer, close=close)) as server, sending() as sender:
            assert await within(sender.post(server.url, b"", {})) == status
            assert await within(sender.post(server.url, b"", {})) == status
            assert server.accepted == connections

    run(main())


def test_a_huge_body_is_not_read_to_its_end_and_the_connection_is_closed() -> None:
    def huge(server: Server, number: int) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await read_request(server, reader)
            size = 2 * MAX_BODY
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            with contextlib.suppress(ConnectionError):  # the client leaves part way
                writer.write(b"x" * size)
                await writer.drain()
                await read_request(server, reader)  # nothing more: the client closed

        return handle

    async def main() -> None:
        async with serve(huge) as server, sending() as sender:
            assert await within(sender.post(server.url, b"", {})) == 200
            assert await within(server.ended.get()) == 1

    run(main())


def test_a_body_that_stops_short_is_no_answer() -> None:
    async def main() -> None:
        short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        async with serve(answering(short, close=True)) as server, sending() as sender:
            with pytest.raises(NoAnswer, match="in mid-answer"):
                await within(sender.post(server.url, b"", {}))

    run(main())


# -- failures --------------------------------------------------------------------------------


def test_a_server_that_closes_without_answering_is_a_clear_error() -> None:
    def rude(server: Server, number: int) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(server, reader)

        return handle

    async def main() -> None:
        async with serve(rude) as server, sending() as sender:
            with pytest.raises(NoAnswer, match="closed the connection without an answer"):
                await within(sender.post(server.url, b"", {}))
            assert server.accepted == 1  # a fresh connection's failure is not retried

    run(main())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "invalid HTTP response: "),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "invalid HTTP response: "),
        (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", "invalid HTTP response: "),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (MAX_HEAD + 10), "head longer than"),
    ],
    ids=["not http", "bad status", "bad length", "head too long"],
)
def test_a_response_that_is_not_http_is_a_clear_error(answer: bytes, message: str) -> None:
    async def main() -> None:
        async with serve(answering(answer)) as server, sending() as sender:
            with pytest.raises(InvalidResponse, match=message):
                await within(sender.post(server.url, b"", {}))

    run(main())


def test_connection_refused_is_an_os_error() -> None:
    async def main() -> None:
        async with sending() as sender:
            with pytest.raises(ConnectionRefusedError):
                await within(sender.post(f"http://127.0.0.1:{free_port()}/x", b"", {}))

    run(main())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/x", "scheme must be http or https"),
        ("127.0.0.1:8000/x", "scheme must be http or https"),
        ("http:///no-host", "no host"),
        ("http://127.0.0.1:99999/x", "out of range"),
    ],
)
def test_a_url_it_cannot_use_is_a_value_error(url: str, message: str) -> None:
    async def main() -> None:
        async with sending() as sender:
            with pytest.raises(ValueError, match=message):
                await sender.post(url, b"", {})

    run(main())


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nX-Injected: 1"},
        {"X-Evil": "a\nb"},
        {"X-Evil\r\nX-Injected": "1"},
        {"X Evil": "1"},
        {"Content-Length": "5"},
        {"Host": "elsewhere"},
    ],
    ids=["crlf in value", "lf in value", "crlf in name", "space in name", "length", "host"],
)
def test_a_header_it_cannot_send_is_a_value_error_and_nothing_is_sent(
    headers: dict[str, str],
) -> None:
    async def main() -> None:
        async with serve(answering(OK)) as server, sending() as sender:
            with pytest.raises(ValueError, match="header"):
                await sender.post(server.url, b"", headers)
            assert server.accepted == 0

    run(main())


def test_a_post_cancelled_mid_answer_leaves_no_connection_behind() -> None:
    async def main() -> None:
        partial_out = asyncio.Event()

        def half(server: Server, number: int) -> Handler:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                assert await read_request(server, reader)
                if number == 1:  # half an answer, then wait for the client to give up
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                    await writer.drain()
                    partial_out.set()
                    assert not await read_request(server, reader)  # the client closed it
                    return
                writer.write(OK)
                await writer.drain()

            return handle

        async with serve(half) as server, sending() as sender:
            post = asyncio.ensure_future(sender.post(server.url, b"", {}))
            await within(partial_out.wait())
            post.cancel()
            with pytest.raises(asyncio.CancelledError):
                await within(post)
            assert await within(server.ended.get()) == 1  # closed by the cancelled post
            assert await within(sender.post(server.url, b"", {})) == 200
            assert server.accepted == 2

    run(main())
