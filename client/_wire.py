"""The wire edge, without I/O: configuration, request descriptions, envelopes and errors.

Everything here turns values into values: a base URL into its canonical form, a call into a
`RequestSpec`, an `httpx.Response` into data or into the right `APIStatusError`.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from .errors import APIStatusError, HiAPIError, MalformedResponseError, error_class

DEFAULT_BASE_URL = "https://api.hiapi.ai"
BASE_URL_ENV = "HIAPI_BASE_URL"
API_KEY_ENV = "HIAPI_API_KEY"
#: The idempotency key's documented limit, in bytes.
MAX_IDEMPOTENCY_KEY_BYTES = 255
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)


@dataclass(slots=True, frozen=True)
class RequestSpec:
    """One HTTP request to make, as data; the sync and async clients turn it into I/O.

    `sink`: stream a 2xx body into this file instead of keeping it in memory.
    """

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, int] | None = None
    json: dict[str, Any] | None = None
    follow_redirects: bool = False
    sink: Path | None = None

    @property
    def replayable(self) -> bool:
        """Whether sending it twice is harmless: a GET, or a POST carrying an Idempotency-Key."""
        return self.method == "GET" or "Idempotency-Key" in self.headers


def normalize_base_url(base_url: str | None) -> str:
    """`https://api.hiapi.ai`, `.../v1`, `.../v1/` all become `https://api.hiapi.ai`."""
    raw = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")
    if raw.lower().endswith("/v1"):
        raw = raw[:-3].rstrip("/")
    url = _parse_url(raw, "base_url")
    if url.query or url.fragment:
        raise ValueError(f"base_url must not carry a query or fragment: {raw!r}")
    return raw


def resolve_api_key(api_key: str | None) -> str:
    """The key given, else `HIAPI_API_KEY`; a missing key is an error now, not at first call."""
    key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")).strip()
    if not key:
        raise HiAPIError(
            f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
        )
    if not (key.isascii() and key.isprintable()):
        raise ValueError("api_key must be printable ASCII")
    return key


def check_idempotency_key(key: str) -> str:
    if not key or not key.isascii() or not key.isprintable():
        raise ValueError("idempotency_key must be non-empty printable ASCII")
    if key != key.strip():
        # HTTP trims header values: such a key could never arrive as it was given.
        raise ValueError("idempotency_key must not start or end with white space")
    if len(key.encode()) > MAX_IDEMPOTENCY_KEY_BYTES:
        raise ValueError(f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes")
    return key


def task_path(task_id: str) -> str:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("task_id must be a non-empty string")
    return f"/v1/tasks/{quote(task_id, safe='')}"


def create_body(
    model: str,
    input: Mapping[str, Any],
    callback: str | Mapping[str, Any] | None,
    route: str | None,
) -> dict[str, Any]:
    """`{"model", "input", "callback"?, "route"?}`: the callback at the top, never in input."""
    if not isinstance(model, str) or not model:
        raise ValueError("model must be a non-empty string")
    if not isinstance(input, Mapping):
        raise TypeError("input must be a mapping of the model's parameters")
    if "callback" in input:
        raise ValueError("pass the callback as callback=..., not inside input")
    body: dict[str, Any] = {"model": model, "input": dict(input)}
    if callback is not None:
        body["callback"] = {"url": callback} if isinstance(callback, str) else dict(callback)
    if route is not None:
        body["route"] = route
    return body


def resolve_download_url(base_url: str, url: str) -> httpx.URL:
    """An output URL, absolute or relative to the base URL, checked to be http(s)."""
    given = _parse_url(url, "output url", absolute=False)
    if given.scheme or given.host:
        return _parse_url(url, "output url")
    return _parse_url(str(httpx.URL(base_url).join(given)), "output url")


def partial_path(target: Path) -> Path:
    """Where a download is written before it is complete: beside `target`, unique per call."""
    return target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.part")


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _parse_url(raw: str, what: str, *, absolute: bool = True) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"{what} is not a valid URL: {raw!r}") from exc
    if absolute and (url.scheme not in ("http", "https") or not url.host):
        raise ValueError(f"{what} must be an absolute http(s) URL: {raw!r}")
    return url


def envelope_data(response: httpx.Response) -> dict[str, Any]:
    """The `data` object of a 2xx envelope; any error answer raises its `APIStatusError`."""
    body = _decode(response)
    status = effective_status(response.status_code, body)
    if not 200 <= status < 300:
        raise status_error(response, body, status)
    if not isinstance(body, dict):
        raise MalformedResponseError(
            f"expected a JSON envelope from {response.request.url}, got {_snippet(response)!r}",
            body=body,
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise MalformedResponseError(f"envelope.data: expected an object, got {data!r}", body=body)
    return data


def check_status(response: httpx.Response) -> httpx.Response:
    """The response itself when it is 2xx; otherwise its `APIStatusError` (for raw downloads)."""
    if response.is_success:
        return response
    raise status_error(response, _decode(response), response.status_code)


def effective_status(http_status: int, body: object) -> int:
    """The HTTP status, unless a 2xx carries an envelope whose `code` is an error code.

    The contract says `code` equals the status; a gateway that answers 200 with an error
    envelope would otherwise be read as success.
    """
    code = body.get("code") if isinstance(body, dict) else None
    if 200 <= http_status < 300 and isinstance(code, int) and not isinstance(code, bool):
        return code if 400 <= code <= 599 else http_status
    return http_status


def status_error(response: httpx.Response, body: object, status: int) -> APIStatusError:
    fields = body if isinstance(body, dict) else {}
    error_code = fields.get("error_code")
    error_code = error_code if isinstance(error_code, str) and error_code else None
    message = fields.get("message")
    if not isinstance(message, str) or not message:
        message = _snippet(response) or response.reason_phrase or "HTTP error"
    cls = error_class(status, error_code)
    return cls(
        message,
        status_code=status,
        error_code=error_code,
        body=body if body is not _NOT_JSON else response.text,
        headers=response.headers,
        retry_after=parse_retry_after(response.headers),
    )


def parse_retry_after(
    headers: httpx.Headers, *, now: Callable[[], float] = time.time
) -> float | None:
    """`Retry-After` in seconds (never negative), from delta-seconds or an HTTP-date.

    An HTTP-date is measured against the answer's own `Date` header when there is one, so a
    skewed local clock does not shorten the wait; `None` when absent or unreadable.
    """
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if _SECONDS.fullmatch(value):
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(headers.get("date", ""))
    return max(0.0, when - (reference if reference is not None else now()))


def _http_date(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are GMT; treat a zone-less one likewise
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class _NotJSON:
    __slots__ = ()


_NOT_JSON = _NotJSON()


def _decode(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # JSON and UnicodeDecodeError are ValueErrors
        return _NOT_JSON


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = response.content[:limit].decode("utf-8", "replace").strip()
    return " ".join(text.split())
