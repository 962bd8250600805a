"""The harness's only way to the target: plain HTTP, throttled, counted, reproducible with curl.

`Throttle` spaces requests (the live API allows 60 a minute; the harness stays under it), `Spend`
counts them, and `curl()` turns any request into a command a person can paste, with the API key
replaced by an environment variable.

    >>> request = httpx.Request("GET", "http://127.0.0.1:8000/v1/tasks",
    ...                         headers={"Authorization": "Bearer sk-secret"})
    >>> curl(request, keys=["sk-secret"])
    'curl -X GET -H "Authorization: Bearer $HIAPI_API_KEY" http://127.0.0.1:8000/v1/tasks'
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from .results import Spend

__all__ = ["KEY_VARIABLES", "Http", "Throttle", "curl", "mask_authorization"]

#: How the keys appear in curl commands: the first key, then the second.
KEY_VARIABLES = ("$HIAPI_API_KEY", "$HIAPI_API_KEY_2")
_MAX_RETRY_AFTER = 60.0
_RATE_LIMIT_RETRIES = 3
_SHOWN_BODY = 2000
# Headers httpx adds on its own; a reader's curl does not need them.
_NOISE = {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length"}


class Throttle:
    """At most `per_minute` requests a minute, spaced evenly; `None` for no limit.

    Shared by every sender of one run (the harness's client and Schemathesis's hooks), so their
    requests together stay under the limit.
    """

    def __init__(self, per_minute: int | None = None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._pause = threading.Event()

    def wait(self, slots: int = 1) -> None:
        """Block until the next request may go; `slots` reserves room for that many at once."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval * slots
        if start > now:
            self._pause.wait(start - now)


class Http:
    """An httpx client for the target that throttles, counts, and waits out documented 429s."""

    def __init__(
        self,
        base_url: str,
        keys: Sequence[str],
        *,
        throttle: Throttle,
        spend: Spend,
        timeout: float = 30.0,
        on_rate_limited: Callable[[httpx.Response], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = list(keys)
        self.throttle = throttle
        self.spend = spend
        self._on_rate_limited = on_rate_limited
        self._lock = threading.Lock()
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, follow_redirects=True, transport=transport
        )
        self._sleep = threading.Event()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Http:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def auth(self, key: int | str | None = 0) -> dict[str, str]:
        """The Authorization header of key number `key` (or of the literal `key`)."""
        if key is None:
            return {}
        value = self.keys[key] if isinstance(key, int) else key
        return {"Authorization": f"Bearer {value}"}

    def request(
        self,
        method: str,
        url: str,
        *,
        key: int | str | None = 0,
        headers: Mapping[str, str] | None = None,
        paced: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request (as key number `key`), retrying a 429 after its `Retry-After`.

        `paced=False` skips the throttle for a request whose slot was reserved beforehand
        (`throttle.wait(slots=n)`), so that n requests can go at the same moment.
        """
        all_headers = {**self.auth(key), **(headers or {})}
        for attempt in range(_RATE_LIMIT_RETRIES + 1):
            response = self._send(method, url, all_headers, kwargs, paced or attempt > 0)
            delay = _retry_after(response)
            if response.status_code != 429 or delay is None or attempt == _RATE_LIMIT_RETRIES:
                return response
            with self._lock:
                self.spend.rate_limited += 1
            if self._on_rate_limited is not None:
                self._on_rate_limited(response)
            self._sleep.wait(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def _send(
        self, method: str, url: str, headers: dict[str, str], kwargs: dict[str, Any], paced: bool
    ) -> httpx.Response:
        if paced:
            self.throttle.wait()
        with self._lock:
            self.spend.requests += 1
        response = self._client.request(method, url, headers=headers, **kwargs)
        response.read()
        return response

    def curl(self, request: httpx.Request) -> str:
        return curl(request, self.keys)


def curl(request: httpx.Request, keys: Sequence[str] = ()) -> str:
    """`request` as a curl command; known keys become `$HIAPI_API_KEY` / `$HIAPI_API_KEY_2`."""
    parts = ["curl", "-X", request.method]
    for raw_name, raw_value in request.headers.raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name.lower() in _NOISE:
            continue
        if name.lower() == "authorization":
            parts += ["-H", _auth_header(value, keys)]
            continue
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    body = request.content
    if body:
        text = body.decode("utf-8", "replace")
        if len(text) > _SHOWN_BODY:
            text = text[:_SHOWN_BODY] + "…"
        parts += ["-d", shlex.quote(text)]
    parts.append(shlex.quote(str(request.url)))
    return " ".join(parts)


def mask_authorization(command: str, keys: Sequence[str] = ()) -> str:
    """A Schemathesis curl command with its Authorization shown as the key variable."""
    shown = f'"Authorization: Bearer {KEY_VARIABLES[0]}"'
    command = command.replace("'Authorization: [Filtered]'", shown)
    for index, key in enumerate(keys[: len(KEY_VARIABLES)]):
        variable = f'"Authorization: Bearer {KEY_VARIABLES[index]}"'
        command = command.replace(shlex.quote(f"Authorization: Bearer {key}"), variable)
    return command


def _auth_header(value: str, keys: Sequence[str]) -> str:
    scheme, _, token = value.partition(" ")
    for index, key in enumerate(keys[: len(KEY_VARIABLES)]):
        if token == key:
            return f'"Authorization: {scheme} {KEY_VARIABLES[index]}"'
    # Not one of the run's keys (a deliberately bad one): harmless to show as it is.
    return shlex.quote(f"Authorization: {value}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None
