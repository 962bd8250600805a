"""Hostile input: every way a client can send nonsense is answered with a 4xx in HiAPI's envelope,
nothing the fake reads or holds for a client is unbounded, and it keeps serving afterwards.

Bodies, types, ids, paging and methods run in-process and over uvicorn (the `fake` fixture);
what only a socket can say (bytes httpx refuses to send, trickling clients, half-sent bodies)
runs over raw sockets against a uvicorn server with short limits. `test_app.py` holds the
ordinary refusals; this file does not repeat them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_server.app import create_app
from mock_server.backend import Backend
from mock_server.bodies import MAX_DEPTH
from mock_server.clock import ManualClock
from mock_server.config import MAX_BODY_BYTES
from mock_server.control import CONTROL_SPEC
from mock_server.rules import HttpFault, Match
from mock_server.server import ServerLimits, ServerThread
from mock_server.spec import spec_path

from ..conftest import KEY, PAGE_EXAMPLE, Fake, auth, fixed_config
from .test_cli import serve

MB = 1024 * 1024
#: Short limits, so the tests of slow clients take about a second each.
LIMITS = ServerLimits(header_timeout=1.0, max_header_bytes=64 * 1024, keep_alive=1)
BODY_TIMEOUT = 1.0
#: How late, past a limit, the server may close a connection (a loaded CI machine).
SLACK = 4.0
JSON_HEADERS = {**auth(), "Content-Type": "application/json"}
VALID_RAW = json.dumps(PAGE_EXAMPLE).encode()


# -- checks ---------------------------------------------------------------------------------------


def refused(status_code: int, body: bytes, status: int, error_code: str, *fragments: str) -> None:
    """A refusal in HiAPI's envelope: `code` equals the status, the message names the problem."""
    assert status_code == status, body[:300]
    envelope = json.loads(body)
    assert envelope["code"] == status
    assert envelope["data"] is None
    assert envelope["error_code"] == error_code
    for fragment in fragments:
        assert fragment in envelope["message"], envelope["message"]
    assert len(envelope["message"]) < 1000  # never echoes a huge value back


def refused_response(response: httpx2.Response, status: int, code: str, *fragments: str) -> None:
    refused(response.status_code, response.content, status, code, *fragments)


# -- a uvicorn fake with short limits, and raw sockets --------------------------------------------


class _Errors(logging.Handler):
    """Collects what the server logs at ERROR: an unexpected exception, a 500, a failed job."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _CountingBody:
    """ASGI wrapper counting the request-body bytes the app asked for (what the server read)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@dataclass
class Served:
    backend: Backend
    clock: ManualClock
    server: ServerThread
    counter: _CountingBody
    client: httpx2.Client
    errors: _Errors

    @property
    def port(self) -> int:
        return self.server.port

    def still_serving(self) -> None:
        """A normal create and read still work, and nothing was logged as an error."""
        created = self.client.post("/v1/tasks", content=VALID_RAW, headers=JSON_HEADERS)
        assert created.status_code == 200, created.text
        task_id = created.json()["data"]["taskId"]
        assert self.client.get(f"/v1/tasks/{task_id}", headers=auth()).status_code == 200
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]


@pytest.fixture(scope="module")
def _served() -> Iterator[Served]:
    clock = ManualClock()
    backend = Backend(fixed_config(), clock=clock)
    counter = _CountingBody(create_app(backend=backend, body_timeout=BODY_TIMEOUT))
    errors = _Errors()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "hiapi_mock")]
    for logger in loggers:
        logger.addHandler(errors)
    server = ServerThread(counter, limits=LIMITS).start()
    # A fresh connection per request: a kept-alive one may be closed after 1 s idle.
    limits = httpx2.Limits(max_keepalive_connections=0)
    client = httpx2.Client(base_url=server.url, timeout=30, limits=limits)
    yield Served(backend, clock, server, counter, client, errors)
    client.close()
    server.stop()
    backend.close()
    for logger in loggers:
        logger.removeHandler(errors)


@pytest.fixture
def served(_served: Served) -> Served:
    """The module's uvicorn fake (short limits), reset, with no errors logged so far."""
    _served.backend.reset()
    _served.counter.read = 0
    _served.errors.records.clear()
    return _served


@dataclass(frozen=True, slots=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        return b""


#: Bytes read past one answer (pipelined answers can arrive in one read), by socket.
_LEFTOVER: dict[int, bytes] = {}


def read_answer(sock: socket.socket, *, head_only: bool = False) -> RawAnswer | None:
    """One HTTP answer from `sock`, or None if the server closed without answering."""
    buffer = _LEFTOVER.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in buffer:
        chunk = _recv(sock)
        if not chunk:
            return None
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = _recv(sock)
        if not chunk:
            break
        body += chunk
    if not head_only and len(body) > length:
        _LEFTOVER[sock.fileno()] = body[length:]
        body = body[:length]
    return RawAnswer(int(status_line.split()[1]), headers, body)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (anything it sends first is skipped)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def connect(served: Served) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    _LEFTOVER.pop(sock.fileno(), None)  # a closed socket's number may come back
    return sock


def exchange(served: Served, data: bytes, *, head_only: bool = False) -> RawAnswer | None:
    with connect(served) as sock:
        sock.sendall(data)
        return read_answer(sock, head_only=head_only)


def request_bytes(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


POST_HEAD = (
    b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
    b"Content-Type: application/json\r\n"
)


# -- bodies ---------------------------------------------------------------------------------------

_CALLBACK = {"url": "http://127.0.0.1:9/hooks", "when": "final"}
_FULL_BODY: dict[str, Any] = {
    "model": "Nano-Banana-Pro",
    "route": "default",
    "input": {**PAGE_EXAMPLE["input"], "image_input": ["https://example.com/a.png"]},
    "callback": _CALLBACK,
}


def _deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def _nbp(input_raw: bytes, rest: bytes = b"") -> bytes:
    """A create body's bytes with `input` (and more top-level fields) spelled out raw."""
    return b'{"model":"Nano-Banana-Pro","input":' + input_raw + rest + b"}"


_SURROGATE_URL = rb'{"prompt":"x","image_input":["https://e.com/\udfff"]}'
MALFORMED: list[tuple[str, bytes, str]] = [
    ("raw NUL in prompt", _nbp(b'{"prompt":"a\x00b"}'), "control"),
    ("raw newline in string", b'{"model":"Nano-\nBanana-Pro","input":{}}', "control"),
    ("invalid UTF-8 in prompt", _nbp(b'{"prompt":"\xc3\x28"}'), "UTF-8"),
    ("overlong UTF-8", _nbp(b'{"prompt":"\xc0\xaf"}'), "UTF-8"),
    ("UTF-8 encoded surrogate", _nbp(b'{"prompt":"\xed\xa0\x80"}'), "UTF-8"),
    ("latin-1 body", _nbp('{"prompt":"é"}'.encode("latin-1")), "UTF-8"),
    ("UTF-16 body", json.dumps(PAGE_EXAMPLE).encode("utf-16"), "UTF-8"),
    ("unpaired surrogate in prompt", _nbp(rb'{"prompt":"x\ud800"}'), "surrogate"),
    ("unpaired surrogate in a URL", _nbp(_SURROGATE_URL), "surrogate"),
    ("unpaired surrogate in a key", _nbp(rb'{"prompt":"x","\ud800":1}'), "surrogate"),
    ("nested past the limit", _nbp(b'{"prompt":"x"}', b',"callback":' + _deep(MAX_DEPTH)), "deep"),
    ("nested 900 deep", _nbp(b'{"prompt":"x","q":' + b"[" * 900 + b"]" * 900 + b"}"), "deep"),
    ("nested 100k deep objects", _deep(100_000), "nested too deeply"),
    ("a number of 5000 digits", _nbp(b'{"prompt":' + b"9" * 5000 + b"}"), "digits"),
    ("Infinity", _nbp(b'{"prompt":Infinity}'), "Infinity"),
    ("-Infinity", b'{"model":-Infinity}', "Infinity"),
    ("byte order mark", b"\xef\xbb\xbf" + VALID_RAW, "not valid JSON"),
    ("whitespace only", b" \r\n\t ", "empty"),
    ("two objects", VALID_RAW + VALID_RAW, "not valid JSON"),
    ("trailing garbage", VALID_RAW + b" x", "not valid JSON"),
    ("single quotes", b"{'model': 'Nano-Banana-Pro'}", "not valid JSON"),
    ("comment", b'{"model": "Nano-Banana-Pro" /* hi */}', "not valid JSON"),
    ("unterminated string", b'{"model": "Nano-Banana-Pro', "not valid JSON"),
    ("lone high byte", b"\x80", "UTF-8"),
    ("all NUL", b"\x00" * 64, "not valid JSON"),
]


@pytest.mark.parametrize(
    ("raw", "fragment"), [(r, f) for _, r, f in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_bodies_are_400_naming_the_problem(fake: Fake, raw: bytes, fragment: str) -> None:
    response = fake.client.post("/v1/tasks", content=raw, headers=JSON_HEADERS)
    refused_response(response, 400, "INVALID_REQUEST", "body", fragment)
    assert fake.task_id()  # still serving


def test_a_nul_character_escaped_in_a_prompt_is_an_ordinary_character(fake: Fake) -> None:
    """`\\u0000` is valid JSON and a valid string: the task runs, its file renders."""
    task_id = fake.task_id({"model": "Nano-Banana-Pro", "input": {"prompt": "a\u0000b"}})
    fake.clock.advance(13)
    task = fake.task(task_id)
    assert task["status"] == "success"
    assert fake.client.get(task["output"][0]["url"]).status_code == 200


def _schema_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(spec_path().read_text(encoding="utf-8"))
    return document


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def typed_fields(
    document: dict[str, Any], node: dict[str, Any], path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path, JSON type) of every field of a create body whose type `openapi.yaml` declares."""
    node = _resolve(document, node)
    if path and "type" in node:
        yield path, node["type"]
    for name, child in node.get("properties", {}).items():
        yield from typed_fields(document, child, (*path, name))
    if "items" in node:
        yield from typed_fields(document, node["items"], (*path, 0))


_SAMPLES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "integer": 7,
    "number": 1.5,
    "string": "s",
    "array": [1],
    "object": {"k": 1},
}


def _wrong_samples(expected: str) -> list[Any]:
    fits = {expected, "integer"} if expected == "number" else {expected}
    return [value for kind, value in _SAMPLES.items() if kind not in fits]


def _replaced(body: Any, path: tuple[str | int, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def _field_name(path: tuple[str | int, ...]) -> str:
    name = ""
    for step in path:
        name += f"[{step}]" if isinstance(step, int) else f"{'.' if name else ''}{step}"
    return name


def test_a_wrong_json_type_anywhere_is_400_naming_the_field(fake: Fake) -> None:
    document = _schema_document()
    request = document["components"]["schemas"]["NanoBananaProTaskRequest"]
    fields = list(typed_fields(document, request))
    assert len(fields) >= 10, fields  # model, route, input and its fields, callback and its
    assert fake.create(_FULL_BODY).status_code == 200
    wrong: list[str] = []
    for path, expected in fields:
        for value in _wrong_samples(expected):
            response = fake.create(_replaced(_FULL_BODY, path, value))
            envelope = response.json()
            name = _field_name(path)
            if response.status_code != 400 or f"{name}:" not in envelope["message"]:
                wrong.append(f"{name}={value!r}: {response.status_code} {envelope['message']}")
    assert not wrong, "\n".join(wrong)
    assert fake.client.get("/v1/tasks", headers=auth()).json()["data"]["total"] == 1


def _input(**fields: Any) -> dict[str, Any]:
    return {"model": "Nano-Banana-Pro", "input": {"prompt": "x", **fields}}


_NINE_MB = "9" * (9 * MB)
HUGE: list[tuple[str, Any, tuple[str, ...]]] = [
    ("9 MB prompt", _input(prompt=_NINE_MB), ("input.prompt:", "10000")),
    ("9 MB model", {"model": _NINE_MB, "input": {}}, ("model:", "unknown model")),
    ("9 MB field name", _input(**{_NINE_MB: 1}), ("input:", "unknown field")),
    ("9 MB enum value", _input(aspect_ratio=_NINE_MB), ("input.aspect_ratio:",)),
    ("1M references", _input(image_input=[0] * 1_000_000), ("input.image_input:", "1000")),
    ("1001 references", _input(image_input=["https://e.com/a"] * 1001), ("input.image_input:",)),
    ("1000 bad references", _input(image_input=[0] * 1000), ("input.image_input", "8 items")),
    ("200k fields", _input(**{f"k{i}": i for i in range(200_000)}), ("input:", "unknown field")),
    ("1M nulls", [None] * 1_000_000, ("body: has 1000000 items",)),
    ("1000 nulls", [None] * 1000, ("body: must be a JSON object",)),
    ("500k empty arrays", _input(prompt=[[]] * 500_000), ("input.prompt:", "1000")),
    ("1000 arrays of 1000", _input(q=[[0] * 1000] * 1000), ("input:", "unknown field 'q'")),
]


@pytest.mark.parametrize(
    ("body", "fragments"), [(b, f) for _, b, f in HUGE], ids=[n for n, _, _ in HUGE]
)
def test_huge_strings_arrays_and_objects_within_10_mb_are_400(
    fake: Fake, body: Any, fragments: tuple[str, ...]
) -> None:
    raw = json.dumps(body).encode()
    assert len(raw) < MAX_BODY_BYTES
    response = fake.client.post("/v1/tasks", content=raw, headers=JSON_HEADERS)
    refused_response(response, 400, "INVALID_REQUEST", *fragments)
    assert fake.task_id()


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("APPLICATION/JSON", 200),
        ("application/json;charset=UTF-8", 200),
        ("application/vnd.hiapi+json", 200),
        ("application/jsonx", 415),
        ("json", 415),
        ("text/json", 415),
        ("application/javascript", 415),
        (";application/json", 415),
        ("application/" + "x" * 5000, 415),
    ],
)
def test_content_types(fake: Fake, content_type: str, status: int) -> None:
    headers = {**auth(), "Content-Type": content_type}
    response = fake.client.post("/v1/tasks", content=VALID_RAW, headers=headers)
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        refused_response(response, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json")


def test_a_body_past_10_mb_is_refused_while_it_streams_in_process(fake: Fake) -> None:
    """Driven as ASGI directly, in 1 MB messages: the app stops asking after about 10 MB."""
    app = create_app(backend=fake.backend)
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * MB, "more_body": pulled < 200}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [
        (b"authorization", b"Bearer " + KEY.encode()),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/tasks",
        "raw_path": b"/v1/tasks",
        "query_string": b"",
        "headers": headers,
        "scheme": "http",
        "http_version": "1.1",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    refused(start["status"], body, 413, "PAYLOAD_TOO_LARGE", "10 MB")
    assert (b"connection", b"close") in start["headers"]
    assert pulled <= MAX_BODY_BYTES // MB + 1
    assert fake.task_id()


# -- bodies over a socket -------------------------------------------------------------------------


@pytest.mark.server
def test_a_body_past_10_mb_is_refused_while_it_streams(served: Served) -> None:
    """A 200 MB upload: the server reads about 10 MB, answers 413 and closes the connection,
    so the client stops sending long before its generator is done."""
    consumed = 0

    def upload() -> Iterator[bytes]:
        nonlocal consumed
        chunk = b"x" * MB
        yield b'{"model": "'
        for _ in range(200):
            consumed += len(chunk)
            yield chunk

    response = served.client.post("/v1/tasks", content=upload(), headers=JSON_HEADERS)
    refused_response(response, 413, "PAYLOAD_TOO_LARGE", "10 MB")
    assert response.headers["connection"] == "close"
    assert served.counter.read <= MAX_BODY_BYTES + MB
    assert consumed <= 64 * MB  # what the socket buffers held, not the 200 MB
    served.still_serving()


@pytest.mark.server
def test_a_declared_length_past_10_mb_is_refused_before_reading(served: Served) -> None:
    response = served.client.post("/v1/tasks", content=b"x" * (30 * MB), headers=JSON_HEADERS)
    refused_response(response, 413, "PAYLOAD_TOO_LARGE", "10 MB")
    assert served.counter.read == 0
    served.still_serving()


@pytest.mark.server
def test_expect_100_continue_past_the_limit_is_refused_without_continue(served: Served) -> None:
    head = POST_HEAD + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (20 * MB)
    answer = exchange(served, head)
    assert answer is not None
    refused(answer.status, answer.body, 413, "PAYLOAD_TOO_LARGE")
    assert served.counter.read == 0
    served.still_serving()


@pytest.mark.server
def test_a_body_shorter_than_its_length_times_out_with_408(served: Served) -> None:
    with connect(served) as sock:
        started = time.monotonic()
        sock.sendall(POST_HEAD + b'Content-Length: 100\r\n\r\n{"model":')
        answer = read_answer(sock)
        assert answer is not None
        refused(answer.status, answer.body, 408, "REQUEST_TIMEOUT", "body", "1 s")
        assert answer.headers["connection"] == "close"
        assert closed_within(sock, SLACK)
        assert BODY_TIMEOUT <= time.monotonic() - started < BODY_TIMEOUT + SLACK
    served.still_serving()


@pytest.mark.server
def test_a_chunked_body_that_never_ends_times_out_with_408(served: Served) -> None:
    with connect(served) as sock:
        sock.sendall(POST_HEAD + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n')
        answer = read_answer(sock)
        assert answer is not None
        refused(answer.status, answer.body, 408, "REQUEST_TIMEOUT", "body")
        assert closed_within(sock, SLACK)
    served.still_serving()


@pytest.mark.server
def test_a_body_cut_off_by_the_client_is_no_server_error(served: Served) -> None:
    with connect(served) as sock:
        sock.sendall(POST_HEAD + b'Content-Length: 100\r\n\r\n{"model":')
        sock.shutdown(socket.SHUT_WR)
        assert read_answer(sock) is None  # nobody left to answer
    served.still_serving()  # no 500 logged, no traceback
    [entry] = served.backend.journal.entries(path="/v1/tasks", method="POST", limit=2)[:1]
    assert entry.status == 499  # recorded as "client closed request"


@pytest.mark.server
def test_an_answer_before_the_body_was_read_closes_the_connection(served: Served) -> None:
    """A 401 sent without reading a 5 MB body: the server stops reading it."""
    head = b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with connect(served) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n{" % (5 * MB))
        answer = read_answer(sock)
        assert answer is not None
        refused(answer.status, answer.body, 401, "UNAUTHORIZED")
        assert answer.headers["connection"] == "close"
        assert closed_within(sock, SLACK)
    assert served.counter.read == 0
    served.still_serving()


@pytest.mark.server
def test_bodies_read_for_a_rule_are_bounded_too(served: Served) -> None:
    """A request rule matching on the prompt reads the body before the route does: the same
    size and time limits hold there."""
    served.backend.rules.add(Match(prompt="never-sent"), HttpFault(503))
    too_big = served.client.post("/v1/tasks", content=iter([b"x" * MB] * 30), headers=JSON_HEADERS)
    refused_response(too_big, 413, "PAYLOAD_TOO_LARGE", "10 MB")
    assert served.counter.read <= MAX_BODY_BYTES + MB
    with connect(served) as sock:
        sock.sendall(POST_HEAD + b'Content-Length: 100\r\n\r\n{"model":')
        answer = read_answer(sock)
    assert answer is not None
    refused(answer.status, answer.body, 408, "REQUEST_TIMEOUT", "body")
    served.still_serving()


# -- requests only a socket can send --------------------------------------------------------------

_GET = b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\n"
PARSE_ERRORS: list[tuple[str, bytes]] = [
    ("invalid UTF-8 in the request line", b"GET /v1/tasks/\xff\xfe HTTP/1.1\r\n\r\n"),
    ("NUL in the request line", b"GET /v1/tasks/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("NUL in a header", _GET + b"Authorization: Bearer sk-a\x00b\r\n\r\n"),
    ("unknown method", b"BREW /v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("not HTTP at all", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64),
    ("header without colon", _GET + b"Junk\r\n\r\n"),
    ("length and chunked", POST_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("two lengths", POST_HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    ("negative length", POST_HEAD + b"Content-Length: -1\r\n\r\n"),
    ("length of 20 digits", POST_HEAD + b"Content-Length: 99999999999999999999\r\n\r\n"),
    ("bad chunk size", POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
]


@pytest.mark.server
@pytest.mark.parametrize("raw", [r for _, r in PARSE_ERRORS], ids=[n for n, _ in PARSE_ERRORS])
def test_unparseable_requests_are_400_in_the_envelope(served: Served, raw: bytes) -> None:
    with connect(served) as sock:
        sock.sendall(raw)
        answer = read_answer(sock)
        assert answer is not None
        refused(answer.status, answer.body, 400, "INVALID_REQUEST", "invalid HTTP request: ")
        assert answer.headers["content-type"] == "application/json"
        assert closed_within(sock, SLACK)
    served.still_serving()


_WEBSOCKET = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
_H2C = {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABk"}
ODD_BUT_READABLE: list[tuple[str, bytes, int]] = [
    ("bad UTF-8 in a header", _GET + b"X-Junk: \xff\r\nAuthorization: Bearer sk-a\r\n\r\n", 200),
    ("invalid UTF-8 in the key", _GET + b"Authorization: Bearer \xff\xfe\r\n\r\n", 401),
    ("a hostile Host", request_bytes("GET", "/v1/tasks", {**auth(), "Host": "[::1"}), 200),
    ("absolute-form target", request_bytes("GET", "http://elsewhere/v1/tasks", auth()), 200),
    ("HTTP/1.0", b"GET /v1/tasks HTTP/1.0\r\nAuthorization: Bearer sk-a\r\n\r\n", 200),
    ("WebSocket upgrade", request_bytes("GET", "/v1/tasks", {**auth(), **_WEBSOCKET}), 200),
    ("h2c upgrade", request_bytes("GET", "/v1/tasks", {**auth(), **_H2C}), 200),
    ("CONNECT", b"CONNECT /v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("no version (HTTP/0.9)", b"GET /v1/tasks\r\n\r\n", 401),
    ("trailing slash", request_bytes("GET", "/v1/tasks/", auth()), 404),
    ("dot segments", request_bytes("GET", "/v1/tasks/../", auth()), 404),
    ("10k-character task id", request_bytes("GET", "/v1/tasks/" + "Z" * 10_000, auth()), 404),
    ("invalid escapes", request_bytes("GET", "/v1/tasks?page=%ff%fe&size=%", auth()), 200),
]


@pytest.mark.server
@pytest.mark.parametrize(
    ("raw", "status"),
    [(r, s) for _, r, s in ODD_BUT_READABLE],
    ids=[n for n, _, _ in ODD_BUT_READABLE],
)
def test_odd_but_readable_requests_are_answered_in_the_envelope(
    served: Served, raw: bytes, status: int
) -> None:
    with connect(served) as sock:
        sock.sendall(raw)
        answer = read_answer(sock)
        assert answer is not None
        assert answer.status == status, answer.body[:300]
        assert json.loads(answer.body)["code"] == status
        if b"Upgrade" in raw or raw.startswith(b"CONNECT"):
            # Answered as plain HTTP; nothing can follow an upgrade request on that connection.
            assert closed_within(sock, SLACK)
    served.still_serving()


@pytest.mark.server
def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    create = POST_HEAD + b"Content-Length: %d\r\n\r\n" % len(VALID_RAW) + VALID_RAW
    listing = request_bytes("GET", "/v1/tasks", auth())
    with connect(served) as sock:
        sock.sendall(create + create + listing + b"GET /v1/tasks/\x00 HTTP/1.1\r\n\r\n")
        answers = [read_answer(sock) for _ in range(4)]
    statuses = [a.status if a else None for a in answers]
    assert statuses == [200, 200, 200, 400]
    assert answers[2] is not None and json.loads(answers[2].body)["data"]["total"] == 2
    served.still_serving()


# -- slow and idle clients ------------------------------------------------------------------------


@pytest.mark.server
def test_a_slow_loris_is_cut_off_and_others_are_served_meanwhile(served: Served) -> None:
    """Headers sent one byte at a time: refused with 408 once the header deadline passes,
    while an ordinary client is served between every byte."""
    trickle = request_bytes("GET", "/v1/tasks", {**auth(), "X-Pad": "p" * 8000})
    served_meanwhile = 0
    answer: RawAnswer | None = None
    with connect(served) as sock:
        started = time.monotonic()
        for byte in trickle:  # bounded: the request is 8 KB, well under the header limit
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0)[0]:
                break  # the server has spoken
            response = served.client.get("/v1/tasks", headers=auth())
            assert response.status_code == 200
            served_meanwhile += 1
        elapsed = time.monotonic() - started
        answer = read_answer(sock)
    assert answer is not None, "the server closed without answering"
    refused(answer.status, answer.body, 408, "REQUEST_TIMEOUT", "headers", "1 s")
    assert LIMITS.header_timeout <= elapsed < LIMITS.header_timeout + SLACK
    assert served_meanwhile >= 10
    served.still_serving()


@pytest.mark.server
def test_a_silent_connection_is_closed_after_the_header_timeout(served: Served) -> None:
    with connect(served) as sock:
        started = time.monotonic()
        assert closed_within(sock, LIMITS.header_timeout + SLACK)
        assert time.monotonic() - started >= LIMITS.header_timeout
    served.still_serving()


@pytest.mark.server
def test_an_idle_kept_alive_connection_is_closed_after_keep_alive(served: Served) -> None:
    with connect(served) as sock:
        sock.sendall(request_bytes("GET", "/v1/tasks", auth()))
        answer = read_answer(sock)
        assert answer is not None and answer.status == 200
        started = time.monotonic()
        assert closed_within(sock, LIMITS.keep_alive + SLACK)
        assert time.monotonic() - started >= LIMITS.keep_alive * 0.5
    served.still_serving()


@pytest.mark.server
def test_many_silent_connections_do_not_stop_the_server(served: Served) -> None:
    socks = [connect(served) for _ in range(50)]
    try:
        for sock in socks[::2]:
            sock.sendall(b"GET /v1/ta")  # half a request line
        served.still_serving()
        assert all(closed_within(sock, LIMITS.header_timeout + SLACK) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    served.still_serving()


@pytest.mark.server
@pytest.mark.parametrize(
    "raw",
    [
        request_bytes("GET", "/v1/tasks", {**auth(), "X-Big": "b" * (100 * 1024)}),
        request_bytes("GET", "/v1/tasks", {f"X-H{i}": "v" * 100 for i in range(1000)}),
        request_bytes("GET", "/v1/tasks/" + "Z" * (100 * 1024), auth()),
    ],
    ids=["one 100 KB header", "1000 headers", "a 100 KB task id"],
)
def test_request_heads_past_64_kb_are_431(served: Served, raw: bytes) -> None:
    with connect(served) as sock:
        sock.sendall(raw)
        answer = read_answer(sock)
        assert answer is not None
        refused(answer.status, answer.body, 431, "REQUEST_HEADERS_TOO_LARGE", "64 KB")
    served.still_serving()


@pytest.mark.server
def test_an_endless_header_is_cut_off_not_buffered(served: Served) -> None:
    """A header that never ends: the server stops after about 64 KB, it does not read 10 MB."""
    with connect(served) as sock:
        sock.sendall(b"GET /v1/tasks HTTP/1.1\r\nX-Endless: ")
        sent = 0
        chunk = b"e" * 65536
        try:
            while sent < 10 * MB:  # bounded
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 10 * MB
    served.still_serving()


# -- task ids, file paths, paging -----------------------------------------------------------------

ODD_IDS = [
    "Z" * 10_000,
    "tk-hiapi-" + "0" * 26 + "x" * 10_000,
    "%00",
    "a%00b",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "%252e%252e%252f",
    "%C0%AE%C0%AE",
    "%FF%FE",
    "%E2%80%AE%F0%9F%8D%8C",
    "tk-hiapi-01hztq8bx2n3gm3yfk4z9d7vqr",
    "%20tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR",
    ";",
    "%3F",
    "%23",
]


@pytest.mark.parametrize("task_id", ODD_IDS, ids=range(len(ODD_IDS)))
def test_odd_task_ids_are_404(fake: Fake, task_id: str) -> None:
    fake.task_id()
    refused_response(fake.get(task_id), 404, "NOT_FOUND")
    finish = fake.client.post(f"/_mock/tasks/{task_id}/finish")
    refused_response(finish, 404, "NOT_FOUND")
    refused_response(fake.client.get(f"/files/{task_id}/0.png"), 404, "NOT_FOUND")
    assert fake.task_id()


def _finished_task(fake: Fake) -> str:
    task_id = fake.task_id()
    fake.clock.advance(13)
    assert fake.task(task_id)["status"] == "success"
    return task_id


ESCAPES = [
    "/files/{id}/../../etc/passwd",
    "/files/{id}/..%2F..%2Fetc%2Fpasswd",
    "/files/{id}/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/files/{id}/..%5c..%5cetc%5cpasswd",
    "/files/{id}/%252e%252e%252fetc%252fpasswd",
    "/files/{id}/..%c0%af..%c0%afetc%c0%afpasswd",
    "/files/..%2F..%2F..%2Fetc/passwd",
    "/files/{id}/%2Fetc%2Fpasswd",
    "/files/%2Fetc%2Fpasswd/0.png",
    "/files//etc/passwd",
    "//etc/passwd",
    "/files/{id}/0.png/..",
    "/files/{id}/0.png%00.txt",
    "/files/{id}/0.png/../../../../etc/passwd",
    "/files/{id}/.",
    "/files/{id}/..",
    "/files/{id}/0.PNG",
    "/files/{id}/0.jpg",
    "/files/{id}/1.png",
    "/files/{id}/0.png%20",
    "/files/{id}/" + "0" * 10_000 + ".png",
    "/openapi.yaml/../../etc/passwd",
    "/_mock/openapi.yaml/..%2F..%2Fetc%2Fpasswd",
]


@pytest.mark.server
def test_file_urls_never_reach_outside_the_fake(served: Served) -> None:
    """Sent raw, so no client normalises the dots away first: always a 404, never a file."""
    created = served.client.post("/v1/tasks", content=VALID_RAW, headers=JSON_HEADERS)
    task_id = created.json()["data"]["taskId"]
    served.clock.advance(13)
    good = served.client.get(f"/files/{task_id}/0.png")
    assert good.status_code == 200 and good.headers["content-type"] == "image/png"
    for template in ESCAPES:
        target = template.replace("{id}", task_id)
        answer = exchange(served, request_bytes("GET", target))
        assert answer is not None, target
        assert answer.status in (404, 405), (target, answer.status)
        code = "NOT_FOUND" if answer.status == 404 else "METHOD_NOT_ALLOWED"
        refused(answer.status, answer.body, answer.status, code)
        assert b"root:" not in answer.body
    served.still_serving()


@pytest.mark.parametrize(
    "query",
    [
        "page=0", "page=-1", "page=abc", "page=1e3", "page=", "page=2147483648",
        "page=99999999999999999999", "page=0x10", "page=1.5", "page=%00", "page=%FF",
        "size=0", "size=101", "size=-5", "size=abc", "size=" + "9" * 5000, "size=1.0",
        "page=1&page=2", "page[]=1", "page[x]=1", "page=" + "1" * 10_000,
    ],
)  # fmt: skip
def test_bad_paging_values_fall_back(fake: Fake, query: str) -> None:
    fake.task_id()
    response = fake.client.get(f"/v1/tasks?{query}", headers=auth())
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["total"] == 1
    assert 1 <= data["size"] <= 100
    assert data["page"] >= 1


def test_paging_reads_only_ascii_digits(fake: Fake) -> None:
    """`openapi.yaml`: an unreadable value falls back to page 1 and size 20. Python's `int()`
    also reads `1_0` and non-ASCII digits (Arabic-Indic, full-width); an HTTP integer is plain
    ASCII digits, so these must fall back too."""
    read_anyway = []
    for value in ("1_0", "\u0662", "\uff12"):
        params = {"page": value, "size": value}
        response = fake.client.get("/v1/tasks", params=params, headers=auth())
        data = response.json()["data"]
        if (data["page"], data["size"]) != (1, 20):
            read_anyway.append(f"{value!r} read as page {data['page']}, size {data['size']}")
    assert not read_anyway, read_anyway


# -- methods ---------------------------------------------------------------------------------------

TRIED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND")
SAMPLE_PARAMS = {
    "{taskId}": "tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR",
    "{ruleId}": "rule-1",
    "{name}": "0.png",
}


def _documented_routes() -> dict[str, set[str]]:
    """Each path of `openapi.yaml` and the control API's document, and its methods."""
    routes: dict[str, set[str]] = {
        "/files/{taskId}/{name}": {"GET"},
        "/openapi.yaml": {"GET"},
    }
    for document in (spec_path(), CONTROL_SPEC):
        paths = yaml.safe_load(Path(document).read_text(encoding="utf-8"))["paths"]
        for path, item in paths.items():
            routes[path] = {m.upper() for m in item if m.upper() in TRIED}
    return routes


ROUTES = _documented_routes()


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_answers_405_with_allow_to_other_methods(fake: Fake, route: str) -> None:
    allowed = ROUTES[route] | ({"HEAD"} if "GET" in ROUTES[route] else set())
    url = route
    for name, value in SAMPLE_PARAMS.items():
        url = url.replace(name, value)
    for method in sorted(set(TRIED) - allowed):
        response = fake.client.request(method, url, headers=auth())
        assert response.status_code == 405, (method, route)
        if method != "HEAD":  # an answer to HEAD has no body
            refused_response(response, 405, "METHOD_NOT_ALLOWED", method)
        assert set(response.headers["Allow"].split(", ")) == allowed, (method, route)
    assert fake.task_id()


@pytest.mark.server
def test_head_answers_like_get_without_a_body(served: Served) -> None:
    created = served.client.post("/v1/tasks", content=VALID_RAW, headers=JSON_HEADERS)
    task_id = created.json()["data"]["taskId"]
    served.clock.advance(13)
    for path, status, key in [
        ("/v1/tasks", 200, True),
        (f"/v1/tasks/{task_id}", 200, True),
        ("/v1/tasks/tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR", 404, True),
        ("/v1/tasks", 401, False),
        (f"/files/{task_id}/0.png", 200, False),
        ("/openapi.yaml", 200, False),
        ("/nowhere", 404, False),
    ]:
        headers = auth() if key else {}
        got = served.client.get(path, headers=headers)
        with connect(served) as sock:
            sock.sendall(request_bytes("HEAD", path, headers))
            answer = read_answer(sock, head_only=True)
            assert answer is not None
            assert answer.status == got.status_code == status, path
            assert answer.headers["content-type"] == got.headers["content-type"], path
            if status == 200:  # a refusal's message names the method
                assert answer.headers["content-length"] == got.headers["content-length"], path
            sock.sendall(request_bytes("GET", path, headers))  # the same connection goes on
            again = read_answer(sock)
            assert again is not None and again.status == status and again.body == got.content
    served.still_serving()


# -- outside the HTTP layer -----------------------------------------------------------------------


def test_a_prompt_cannot_ask_for_millions_of_callback_copies(asgi_fake: Fake) -> None:
    """`[mock:callback=duplicate:N]` comes from any client: an unbounded N would have the fake
    start N deliveries at once when the task ends. It must be a 400 naming the directive."""
    body = {
        "model": "Nano-Banana-Pro",
        "input": {"prompt": "x [mock:callback=duplicate:100000000]"},
        "callback": {"url": "http://127.0.0.1:9/hooks"},
    }
    refused_response(asgi_fake.create(body), 400, "INVALID_REQUEST", "duplicate")
    assert asgi_fake.task_id()


CONTROL_NONSENSE: list[tuple[str, dict[str, Any]]] = [
    ("/_mock/clock/advance", {"seconds": 1e308}),
    ("/_mock/clock/advance", {"duration": "9" * 30 + "h"}),
    ("/_mock/clock/advance", {"to": 1e300}),
    ("/_mock/clock/speed", {"speed": 1e300}),
    ("/_mock/rules", {"action": {"type": "callback", "kind": "duplicate", "copies": 10**8}}),
    ("/_mock/rules", {"action": {"type": "callback", "kind": "reorder", "window": 1e-300}}),
]


@pytest.mark.parametrize(
    ("path", "body"), CONTROL_NONSENSE, ids=[f"{p} {b}"[:60] for p, b in CONTROL_NONSENSE]
)
def test_control_api_nonsense_is_a_4xx_and_the_fake_goes_on(
    asgi_fake: Fake, path: str, body: dict[str, Any]
) -> None:
    """Values no test means (the clock past the year 9999, a burst window of 1e-300 s,
    10^8 copies) are refused, rather than accepted and breaking every later answer."""
    response = asgi_fake.client.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert asgi_fake.client.get("/_mock/clock").status_code == 200
    assert asgi_fake.task_id()
    assert asgi_fake.client.get("/v1/tasks", headers=auth()).status_code == 200


@pytest.mark.server
def test_the_command_line_server_is_guarded_too() -> None:
    """`hiapi-mock serve` must run uvicorn with `mock_server.server.uvicorn_config`: parse
    errors in the envelope, heads bounded in size (and in time, as `ServerThread`)."""
    with serve("--clock", "manual") as (url, _):
        port = int(url.rsplit(":", 1)[1])
        for raw, status, code in [
            (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "INVALID_REQUEST"),
            (request_bytes("GET", "/v1/tasks", {"X-Big": "b" * (100 * 1024)}), 431,
             "REQUEST_HEADERS_TOO_LARGE"),
        ]:  # fmt: skip
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                answer = read_answer(sock)
            assert answer is not None
            refused(answer.status, answer.body, status, code)


def test_a_callback_url_accepted_at_create_is_attempted_and_logged(asgi_fake: Fake) -> None:
    """`http://xn--/cb` passes the schema's `uri` format, but its host is no valid IDNA name:
    the create must refuse it, or its delivery must fail in the delivery log like any
    unreachable URL, never vanish in a failed scheduler job."""
    body = {**PAGE_EXAMPLE, "callback": {"url": "http://xn--/cb"}}
    response = asgi_fake.create(body)
    if response.status_code == 400:
        refused_response(response, 400, "INVALID_REQUEST", "callback.url")
        return
    task_id = response.json()["data"]["taskId"]
    asgi_fake.clock.advance(13)
    asgi_fake.backend.callbacks.wait_idle(10)
    attempts = asgi_fake.backend.callbacks.for_task(task_id)
    assert attempts and attempts[0].error, "the delivery vanished without a trace"
