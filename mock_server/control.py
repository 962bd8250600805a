"""The control API under `/_mock/`, a prefix HiAPI never uses: reset, the clock, rules, the
journal and delivery log, waiting for events, and finishing tasks. Described in
`mock_server/control.yaml`; every operation is a call on the `Backend` (the Python API).

Answers use HiAPI's envelope, so one client handles both. With a control token configured,
every call must carry it as `X-Mock-Token: TOKEN` (or `Authorization: Bearer TOKEN`).
"""

from __future__ import annotations

import hmac
import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from .backend import Backend
from .bodies import ok, read_json
from .clock import ManualClock
from .errors import InvalidRequest, NotFound, Unauthorized
from .rules import RuleError, parse_duration

__all__ = ["CONTROL_SPEC", "control_routes"]

CONTROL_SPEC = Path(__file__).with_name("control.yaml")
_MAX_WAIT = 300.0
_SETTLE = 5.0
#: 9999-12-31T23:59:59Z: no clock value, duration or speed may go past it.
_LARGEST = 253_402_300_799.0
_MAX_SPEED = 1_000_000.0
_CONTROL_BODY = 1024 * 1024


def control_routes() -> list[BaseRoute]:
    """The `/_mock` routes, to mount beside HiAPI's."""
    return [
        Mount(
            "/_mock",
            routes=[
                Route("/openapi.yaml", _spec, methods=["GET"]),
                Route("/reset", _reset, methods=["POST"]),
                Route("/clock", _clock, methods=["GET"]),
                Route("/clock/advance", _advance, methods=["POST"]),
                Route("/clock/freeze", _freeze, methods=["POST"]),
                Route("/clock/speed", _speed, methods=["POST"]),
                Route("/rules", _rules, methods=["GET", "POST", "DELETE"]),
                Route("/rules/{rule_id}", _delete_rule, methods=["DELETE"]),
                Route("/journal", _journal, methods=["GET"]),
                Route("/deliveries", _deliveries, methods=["GET"]),
                Route("/wait", _wait, methods=["POST"]),
                Route("/tasks/{task_id}/finish", _finish, methods=["POST"]),
            ],
        )
    ]


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    token = backend.config.control_token
    if token is not None:
        given = request.headers.get("x-mock-token") or _bearer(request)
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("the control API needs X-Mock-Token (see --control-token)")
    return backend


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def _body(request: Request) -> dict[str, Any]:
    if not await request.body():
        return {}
    # Read as JSON whatever the Content-Type says: `curl -d '{...}'` sends a form type.
    body = await read_json(request, _CONTROL_BODY, any_type=True)
    if not isinstance(body, dict):
        raise InvalidRequest("body: must be a JSON object")
    return body


def _clock_of(backend: Backend) -> ManualClock:
    clock = backend.clock
    if not isinstance(clock, ManualClock):
        raise InvalidRequest("clock: this fake's clock cannot be controlled")
    return clock


def clock_state(backend: Backend) -> dict[str, Any]:
    clock = _clock_of(backend)
    now = clock.now()
    iso = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return {"now": now, "iso": iso, "speed": clock.speed, "frozen": clock.speed == 0}


# -- handlers ------------------------------------------------------------------------------------


async def _spec(request: Request) -> Response:
    _backend(request)
    return FileResponse(CONTROL_SPEC, media_type="application/yaml")


async def _reset(request: Request) -> Response:
    backend = _backend(request)
    backend.reset()
    return ok({"clock": clock_state(backend)})


async def _clock(request: Request) -> Response:
    return ok(clock_state(_backend(request)))


async def _advance(request: Request) -> Response:
    backend = _backend(request)
    body = await _body(request)
    clock = _clock_of(backend)
    if "to" in body:
        to = _number(body, "to")
        if to < clock.now():
            raise InvalidRequest("to: the clock cannot go backwards")
        if to > _LARGEST:
            raise InvalidRequest("to: must be before the year 10000")
        clock.set(to)
    else:
        seconds = _seconds(body)
        if clock.now() + seconds > _LARGEST:
            raise InvalidRequest("seconds: would move the clock past the year 9999")
        clock.advance(seconds)
    # Answer once what the jump made due has gone out (bounded: a stalled receiver waits on).
    settled = await anyio.to_thread.run_sync(backend.callbacks.scheduler.settle, _SETTLE)
    return ok(clock_state(backend) | {"settled": settled})


async def _freeze(request: Request) -> Response:
    backend = _backend(request)
    _clock_of(backend).freeze()
    return ok(clock_state(backend))


async def _speed(request: Request) -> Response:
    backend = _backend(request)
    body = await _body(request)
    speed = _number(body, "speed")
    if not 0 <= speed <= _MAX_SPEED:
        raise InvalidRequest(f"speed: must be 0 to {_MAX_SPEED:g}")
    _clock_of(backend).set_speed(speed)
    return ok(clock_state(backend))


async def _rules(request: Request) -> Response:
    backend = _backend(request)
    if request.method == "POST":
        try:
            rule = backend.rules.add_json(await _body(request))
        except RuleError as exc:
            raise InvalidRequest(str(exc)) from None
        return ok(rule.to_json())
    if request.method == "DELETE":
        backend.rules.reset()
    return ok({"rules": [r.to_json() for r in backend.rules.list()]})


async def _delete_rule(request: Request) -> Response:
    backend = _backend(request)
    rule_id = request.path_params["rule_id"]
    if not backend.rules.delete(rule_id):
        raise NotFound(f"no rule {rule_id[:100]!r}")
    return ok({"deleted": rule_id})


async def _journal(request: Request) -> Response:
    backend = _backend(request)
    query = request.query_params
    entries = backend.journal.entries(
        path=query.get("path"),
        task=query.get("task"),
        key=query.get("key"),
        method=query.get("method"),
        limit=_limit(query.get("limit")),
    )
    return ok({"requests": [e.to_json() for e in entries]})


async def _deliveries(request: Request) -> Response:
    backend = _backend(request)
    task = request.query_params.get("task")
    attempts = backend.callbacks.for_task(task) if task else backend.callbacks.log
    return ok({"deliveries": [asdict(a) | {"ok": a.ok} for a in attempts]})


async def _wait(request: Request) -> Response:
    backend = _backend(request)
    body = await _body(request)
    task_id = body.get("task_id")
    if not isinstance(task_id, str):
        raise InvalidRequest("task_id: is required, a string")
    timeout = _number(body, "timeout", 10.0)
    if not 0 <= timeout <= _MAX_WAIT:
        raise InvalidRequest(f"timeout: must be 0 to {_MAX_WAIT:g} seconds")
    event = body.get("callback")
    if event is not None:
        if event not in ("delivered", "attempted"):
            raise InvalidRequest("callback: must be delivered or attempted")
        if backend.known(task_id).callback_url is None:
            raise InvalidRequest("callback: this task has no callback.url")
        reached = await backend.callbacks.wait_for(task_id, timeout, delivered=event == "delivered")
    else:
        status = body.get("status", "terminal")
        if not isinstance(status, str):
            raise InvalidRequest("status: must be a string")
        reached = await backend.wait_for_status(task_id, status, timeout)
    if not reached:
        raise _WaitTimedOut(f"the awaited event did not happen within {timeout:g} s")
    return ok({"reached": True, "clock": clock_state(backend)})


async def _finish(request: Request) -> Response:
    backend = _backend(request)
    body = await _body(request)
    status = body.get("status", "success")
    error = body.get("error") or {}
    if not isinstance(status, str) or not isinstance(error, dict):
        raise InvalidRequest("status: must be success or fail; error: an object")
    code, message = error.get("code"), error.get("message")
    if not all(v is None or isinstance(v, str) for v in (code, message)):
        raise InvalidRequest("error.code and error.message: must be strings")
    task = backend.finish_task(request.path_params["task_id"], status, code, message)
    return ok(task)


class _WaitTimedOut(InvalidRequest):
    status = 408
    default_code = "WAIT_TIMEOUT"


# -- parsing -------------------------------------------------------------------------------------


def _number(body: dict[str, Any], name: str, default: float | None = None) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name}: is required, a number")
    number = float(value)
    # Beyond these the clock's arithmetic overflows: refuse before anything moves.
    if not math.isfinite(number) or abs(number) > _LARGEST:
        raise InvalidRequest(f"{name}: must be a finite number up to {_LARGEST:g}")
    return number


def _seconds(body: dict[str, Any]) -> float:
    if "duration" in body:
        if not isinstance(body["duration"], str):
            raise InvalidRequest("duration: must be a string such as 90s, 30m or 2h")
        try:
            seconds = parse_duration(body["duration"])
        except RuleError as exc:
            raise InvalidRequest(f"duration: {exc}") from None
        if not math.isfinite(seconds) or seconds > _LARGEST:
            raise InvalidRequest("duration: too long")
        return seconds
    seconds = _number(body, "seconds")
    if seconds < 0:
        raise InvalidRequest("seconds: the clock cannot go backwards")
    return seconds


def _limit(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise InvalidRequest("limit: must be a whole number from 1 to 100000")
    return int(raw)
