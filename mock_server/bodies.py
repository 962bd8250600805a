"""HiAPI's envelope on the way out, JSON bodies on the way in."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .errors import InvalidRequest, MockError, PayloadTooLarge, UnsupportedMediaType

__all__ = ["error_response", "ok", "read_json"]


def ok(data: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": 200, "message": "success", "data": data}, headers=headers)


def error_response(error: MockError) -> JSONResponse:
    """HiAPI's error envelope for `error`, with its `Retry-After` and extra headers."""
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    body = {
        "code": error.status,
        "message": error.message,
        "data": None,
        "error_code": error.error_code,
    }
    return JSONResponse(body, status_code=error.status, headers=headers)


async def read_json(request: Request, limit: int, *, any_type: bool = False) -> Any:
    """The request's JSON body: 415 unless JSON (or `any_type`), 413 past `limit` (refused
    while streaming)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not any_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {media_type[:100] or 'missing'}"
        )
    too_large = PayloadTooLarge(f"body: larger than the {limit // (1024 * 1024)} MB limit")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return _decode(b"".join(chunks))


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidRequest("body: is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body: is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"body: is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:
        raise InvalidRequest("body: is nested too deeply") from None
    except ValueError as exc:
        raise InvalidRequest(f"body: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
