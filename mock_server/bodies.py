"""HiAPI's envelope on the way out, JSON bodies on the way in.

A body is refused, in the envelope, when it is not JSON (415), larger than the limit (413, while
streaming), not UTF-8, not valid JSON, nested more than `MAX_DEPTH` levels, holds an array of
more than `MAX_ITEMS` items, a number of more than `MAX_DIGITS` digits or a string that is not
valid Unicode (an unpaired surrogate escape such as `"\\ud800"`), all 400. The shape limits
keep every later step (schema validation and its messages, fingerprints, callbacks) cheap and
safe whatever a client sends.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import InvalidRequest, MockError, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_ITEMS",
    "ClientClosed",
    "RequestTimeout",
    "error_response",
    "ok",
    "ok_json",
    "read_json",
    "too_large",
]

#: Deepest nesting of objects and arrays a body may have (HiAPI's own bodies need 3).
MAX_DEPTH = 64
#: Most items one array in a body may hold (HiAPI's own hold at most 8).
MAX_ITEMS = 1000
#: Most digits a JSON number may have.
MAX_DIGITS = 100
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class RequestTimeout(MockError):
    """The client took too long to send its request body."""

    status = 408
    default_code = "REQUEST_TIMEOUT"


class ClientClosed(MockError):
    """The client went away before its request was read: nobody sees this answer, the journal
    records it as nginx does (499)."""

    status = 499
    default_code = "CLIENT_CLOSED_REQUEST"


class _Json(JSONResponse):
    """Starlette's JSONResponse, same bytes, with its encoder built once (`json.dumps` with
    options builds one per call)."""

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content).encode("utf-8")


# No check for circular references: answers are built fresh from JSON-shaped data.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
)


def ok(data: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return _Json({"code": 200, "message": "success", "data": data}, headers=headers)


def ok_json(data: bytes) -> Response:
    """`ok()` for data already rendered as compact JSON: the same bytes."""
    return Response(_OK_HEAD + data + b"}", media_type="application/json")


_OK_HEAD = b'{"code":200,"message":"success","data":'


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
    return _Json(body, status_code=error.status, headers=headers)


def too_large(limit: int) -> PayloadTooLarge:
    """The 413 for a body past `limit` bytes."""
    if limit >= 1024 * 1024:
        return PayloadTooLarge(f"body: larger than the {limit // (1024 * 1024)} MB limit")
    return PayloadTooLarge(f"body: larger than the {limit // 1024} KB limit")


async def read_json(request: Request, limit: int, *, any_type: bool = False) -> Any:
    """The request's JSON body: 415 unless JSON (or `any_type`), 413 past `limit` (refused
    while streaming)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not any_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {media_type[:100] or 'missing'}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
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
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"body: is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:
        raise InvalidRequest(_TOO_DEEP) from None
    except ValueError as exc:
        raise InvalidRequest(f"body: {exc}") from None
    # Walked only when the raw text could break a limit at all.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH or raw.count(b",") >= MAX_ITEMS:
        _check_shape(value)
    if _SURROGATE_ESCAPE.search(raw) and not _valid_unicode(value):
        raise InvalidRequest(
            "body: a string holds an unpaired surrogate escape (\\ud800 to \\udfff); "
            "strings must be valid Unicode"
        )
    return value


_TOO_DEEP = f"body: is nested too deeply (more than {MAX_DEPTH} levels)"


def _check_shape(value: Any) -> None:
    """400 for nesting past `MAX_DEPTH` or an array past `MAX_ITEMS`, naming the array; level
    by level, without recursion."""
    level: list[tuple[str, Any]] = [("", value)] if isinstance(value, dict | list) else []
    for depth in itertools.count(1):
        if not level:
            return
        if depth > MAX_DEPTH:
            raise InvalidRequest(_TOO_DEEP)
        below: list[tuple[str, Any]] = []
        for path, node in level:
            if isinstance(node, dict):
                items = ((_join(path, str(k)[:100]), v) for k, v in node.items() if _nests(v))
            elif len(node) > MAX_ITEMS:
                raise InvalidRequest(
                    f"{path or 'body'}: has {len(node)} items, more than the {MAX_ITEMS} an array "
                    "in a body may hold"
                )
            else:
                items = ((f"{path}[{i}]", v) for i, v in enumerate(node) if _nests(v))
            below.extend(items)
        level = below


def _nests(value: Any) -> bool:
    return isinstance(value, dict | list)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _valid_unicode(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number has more than {MAX_DIGITS} digits")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_int)
