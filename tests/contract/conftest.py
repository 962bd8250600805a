"""Fakes for the harness to check: hiapi-mock as it is, and deliberately broken variants of it.

Variants are built without touching `mock_server`: an ASGI middleware around the app rewrites
what goes out, or the backend of one fake is changed in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract import Report, check
from mock_server.app import create_app
from mock_server.backend import Backend
from mock_server.catalog import Profile
from mock_server.clock import RealClock
from mock_server.config import MockConfig
from mock_server.server import ServerThread

KEYS = ("sk-contract-test-a", "sk-contract-test-b")
SECRET = "whsec-contract-tests-0123456789"
#: Small enough that a whole run takes a few seconds, large enough to exercise every phase.
EXAMPLES = 4


@dataclass
class Variant:
    """One fake served on 127.0.0.1; `backend` may be changed before the harness runs."""

    url: str
    backend: Backend


Wrap = Callable[[ASGIApp], ASGIApp]


@pytest.fixture
def serve() -> Iterator[Callable[..., Variant]]:
    """Start fakes (optionally wrapped in a middleware); all stopped at teardown."""
    stops: list[Callable[[], None]] = []

    def start(
        wrap: Wrap | None = None, secret: str | None = SECRET, profile: str | Profile = "fast"
    ) -> Variant:
        app = create_app(MockConfig(profile=profile, webhook_secret=secret), clock=RealClock())
        backend: Backend = app.state.backend
        server = ServerThread(wrap(app) if wrap else app).start()
        stops.extend([backend.close, server.stop])
        return Variant(server.url, backend)

    yield start
    for stop in reversed(stops):
        stop()


def run_against(
    variant: Variant,
    *groups: str,
    keys: Sequence[str] = KEYS,
    retry_wait: float | None = None,
) -> Report:
    """The harness against `variant` (only `groups`, if given), told the signing secret."""
    return check(
        variant.url,
        list(keys),
        webhook_secret=SECRET,
        groups=groups or None,
        examples=EXAMPLES,
        retry_wait=retry_wait,
    )


@pytest.fixture(scope="session")
def fake_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    """One whole run against the in-process fake, with its report files."""
    directory = tmp_path_factory.mktemp("report")
    return check(examples=EXAMPLES, report_dir=directory), directory


class Rewrite:
    """ASGI middleware: passes `/v1/` answers through `body` and `headers` before they leave."""

    def __init__(
        self,
        app: ASGIApp,
        body: Callable[[bytes], bytes] = lambda b: b,
        headers: Callable[[list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]] = lambda h: h,
    ) -> None:
        self.app = app
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._flush(start, b"".join(chunks), send)

        await self.app(scope, receive, keep)

    async def _flush(self, start: Message, raw: bytes, send: Send) -> None:
        body = self.body(raw)
        headers = [
            (k, v) for k, v in self.headers(list(start["headers"])) if k != b"content-length"
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class HideControl:
    """ASGI middleware: `/_mock/` answers 404, so the fake looks like an unknown endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith("/_mock"):
            body = b'{"code":404,"message":"not found","data":null}'
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
