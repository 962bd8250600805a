"""The HTTP face of the fake: routes that parse, call the `Backend`, and render HiAPI's envelope.

>>> from starlette.testclient import TestClient
>>> client = TestClient(create_app(MockConfig(profile="instant")))
>>> client.get("/v1/tasks", headers={"Authorization": "Bearer sk-demo"}).json()["code"]
200
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from .backend import Backend
from .bodies import ClientClosed, error_response, ok, ok_json, read_json
from .clock import Clock
from .config import MockConfig
from .control import control_routes
from .errors import (
    InvalidRequest,
    MethodNotAllowed,
    MockError,
    NotFound,
)
from .middleware import ConnectionDropped, GateMiddleware, quiet_drops
from .rules import RequestFacts
from .spec import spec_path

__all__ = ["BODY_TIMEOUT", "create_app"]

log = logging.getLogger("hiapi_mock")

#: Seconds a client may spend sending one request body (time the server spends waiting for it).
BODY_TIMEOUT = 30.0


def create_app(
    config: MockConfig | None = None,
    *,
    clock: Clock | None = None,
    backend: Backend | None = None,
    body_timeout: float = BODY_TIMEOUT,
) -> Starlette:
    """A Starlette app serving HiAPI's task API. Its state lives in `app.state.backend`."""
    backend = backend or Backend(config, clock=clock)
    routes = [
        Route("/v1/tasks", _tasks, methods=["GET", "POST"]),
        Route("/v1/tasks/{task_id}", _get_task, methods=["GET"]),
        Route("/files/{task_id}/{name}", _get_file, methods=["GET"]),
        Route("/openapi.yaml", _openapi, methods=["GET"]),
        *control_routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            MockError: _mock_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _server_error,
        },
    )
    # `/v1/tasks/` is a 404 in the envelope, not a bodiless 307 to `/v1/tasks`.
    app.router.redirect_slashes = False
    app.state.backend = backend
    app.add_middleware(GateMiddleware, backend=backend, body_timeout=body_timeout)
    quiet_drops()
    return app


# -- envelope ----------------------------------------------------------------------------------


async def _mock_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MockError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = _allow((exc.headers or {}).get("Allow", ""))
        error: MockError = MethodNotAllowed(
            f"method {request.method} is not allowed here; allowed: {allow}",
            headers={"Allow": allow} if allow else None,
        )
    elif exc.status_code == 404:
        error = NotFound(f"no such endpoint: {request.method} {request.url.path[:200]}")
    else:
        error = InvalidRequest(str(exc.detail)) if exc.status_code < 500 else MockError(exc.detail)
    return error_response(error)


def _allow(listed: str) -> str:
    """`Allow` sorted, with HEAD wherever GET is (Starlette answers HEAD as GET)."""
    methods = {m.strip().upper() for m in listed.split(",") if m.strip()}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody reads this answer; the journal records it as 499.
    return error_response(ClientClosed("the client closed the connection before its body arrived"))


async def _server_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ConnectionDropped):
        log.exception("unexpected error while answering %s %s", request.method, request.url.path)
    return error_response(MockError("internal error"))


# -- routes ------------------------------------------------------------------------------------


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _note_task(request: Request, task_id: str) -> str:
    """Tell the journal which task a request was about (what `request.state.task_id = ...`
    does, without building a State object per request)."""
    request.scope.setdefault("state", {})["task_id"] = task_id
    return task_id


async def _tasks(request: Request) -> Response:
    """`/v1/tasks`: one route, so a wrong method's 405 lists GET, HEAD and POST in `Allow`."""
    if request.method == "POST":
        return await _create_task(request)
    return _list_tasks(request)


async def _create_task(request: Request) -> Response:
    backend = _backend(request)
    owner = backend.authenticate(request.headers.get("authorization"))
    body = await read_json(request, backend.config.max_body_bytes)
    facts = RequestFacts("POST", request.scope["path"], dict(request.headers.items()), owner)
    task_id, replayed = await backend.create(
        owner, body, request.headers.get("idempotency-key"), _base_url(request.scope), facts
    )
    _note_task(request, task_id)
    return ok({"taskId": task_id}, {"Idempotent-Replay": "true"} if replayed else None)


def _list_tasks(request: Request) -> Response:
    backend = _backend(request)
    owner = backend.authenticate(request.headers.get("authorization"))
    query = request.query_params
    return ok(backend.page(owner, query.get("page"), query.get("size")))


async def _get_task(request: Request) -> Response:
    task_id = _note_task(request, request.path_params["task_id"])
    backend = _backend(request)
    owner = backend.authenticate(request.headers.get("authorization"))
    return ok_json(backend.task_json(owner, task_id))


async def _get_file(request: Request) -> Response:
    _note_task(request, request.path_params["task_id"])
    data, media_type = await _backend(request).outputs.file(
        request.path_params["task_id"], request.path_params["name"]
    )
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=60"})


def _base_url(scope: Scope) -> str:
    """`str(request.base_url)`, worked out once per (scheme, host, root path, server): the
    tasks of one server share it."""
    host = next((value for name, value in scope["headers"] if name == b"host"), b"")
    server = scope.get("server")
    return _base_url_of(
        scope["scheme"], host, scope.get("root_path", ""), tuple(server) if server else None
    )


@functools.lru_cache(maxsize=256)
def _base_url_of(scheme: str, host: bytes, root_path: str, server: Any) -> str:
    headers = [(b"host", host)] if host else []
    scope = {"type": "http", "scheme": scheme, "path": "/", "root_path": root_path,
             "query_string": b"", "headers": headers, "server": server}  # fmt: skip
    return str(Request(scope).base_url)


async def _openapi(request: Request) -> Response:
    return FileResponse(spec_path(), media_type="application/yaml")
