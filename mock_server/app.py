"""The HTTP face of the fake: routes that parse, call the `Backend`, and render HiAPI's envelope.

>>> from starlette.testclient import TestClient
>>> client = TestClient(create_app(MockConfig(profile="instant")))
>>> client.get("/v1/tasks", headers={"Authorization": "Bearer sk-demo"}).json()["code"]
200
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from .backend import Backend
from .bodies import error_response, ok, read_json
from .clock import Clock
from .config import MockConfig
from .control import control_routes
from .errors import (
    InvalidRequest,
    MethodNotAllowed,
    MockError,
    NotFound,
)
from .middleware import (
    ConnectionDropped,
    FaultMiddleware,
    JournalMiddleware,
    RateLimitMiddleware,
    quiet_drops,
)
from .rules import RequestFacts
from .spec import spec_path

__all__ = ["create_app"]

log = logging.getLogger("hiapi_mock")


def create_app(
    config: MockConfig | None = None, *, clock: Clock | None = None, backend: Backend | None = None
) -> Starlette:
    """A Starlette app serving HiAPI's task API. Its state lives in `app.state.backend`."""
    backend = backend or Backend(config, clock=clock)
    routes = [
        Route("/v1/tasks", _Tasks),
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
            Exception: _server_error,
        },
    )
    app.state.backend = backend
    # Added innermost first: journal, then rate limits, then faults, then the routes.
    app.add_middleware(FaultMiddleware, backend=backend)
    app.add_middleware(RateLimitMiddleware, limiter=backend.limiter)
    app.add_middleware(JournalMiddleware, backend=backend)
    quiet_drops()
    return app


# -- envelope ----------------------------------------------------------------------------------


async def _mock_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MockError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error: MockError = MethodNotAllowed(
            f"method {request.method} is not allowed here; allowed: {allow}",
            headers={"Allow": allow} if allow else None,
        )
    elif exc.status_code == 404:
        error = NotFound(f"no such endpoint: {request.method} {request.url.path[:200]}")
    else:
        error = InvalidRequest(str(exc.detail)) if exc.status_code < 500 else MockError(exc.detail)
    return error_response(error)


async def _server_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ConnectionDropped):
        log.exception("unexpected error while answering %s %s", request.method, request.url.path)
    return error_response(MockError("internal error"))


# -- routes ------------------------------------------------------------------------------------


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


class _Tasks(HTTPEndpoint):
    """`/v1/tasks`: one endpoint class, so a wrong method's 405 lists both methods in `Allow`."""

    async def post(self, request: Request) -> Response:
        backend = _backend(request)
        owner = backend.authenticate(request.headers.get("authorization"))
        body = await read_json(request, backend.config.max_body_bytes)
        facts = RequestFacts("POST", request.url.path, _lower(request.headers), owner)
        task_id, replayed = await backend.create(
            owner, body, request.headers.get("idempotency-key"), str(request.base_url), facts
        )
        request.state.task_id = task_id
        return ok({"taskId": task_id}, {"Idempotent-Replay": "true"} if replayed else None)

    async def get(self, request: Request) -> Response:
        backend = _backend(request)
        owner = backend.authenticate(request.headers.get("authorization"))
        query = request.query_params
        return ok(backend.page(owner, query.get("page"), query.get("size")))


async def _get_task(request: Request) -> Response:
    request.state.task_id = request.path_params["task_id"]
    backend = _backend(request)
    owner = backend.authenticate(request.headers.get("authorization"))
    return ok(backend.task(owner, request.path_params["task_id"]))


async def _get_file(request: Request) -> Response:
    request.state.task_id = request.path_params["task_id"]
    data, media_type = await _backend(request).outputs.file(
        request.path_params["task_id"], request.path_params["name"]
    )
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=60"})


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def _openapi(request: Request) -> Response:
    return FileResponse(spec_path(), media_type="application/yaml")
