"""The protocol logic both clients share, written once and free of I/O.

Each operation is a *plan*: a generator that yields steps (`Send` a request, `Pause` for some
seconds) and receives each step's outcome (an `httpx.Response`, the `httpx.HTTPError` the send
raised, or `None` after a pause). Retries, backoff, polling and parsing live here; `HiAPIClient`
and `AsyncHiAPIClient` only carry the steps out, one with blocking calls, one with `await`.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import httpx

from . import _wire
from ._retry import Pager, PollBackoff, RetryPolicy
from ._types import Clock, NotGiven
from ._version import __version__
from .errors import (
    APIConnectionError,
    APITimeoutError,
    HiAPIError,
    MalformedResponseError,
    TaskFailedError,
    WaitTimeoutError,
)
from .models import Task, TaskOutput, TaskPage, TaskStatus

T = TypeVar("T")
logger = logging.getLogger("hiapi.client")

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_MAX_RETRIES = 3
DEFAULT_USER_AGENT = f"hiapi-client-python/{__version__} httpx/{httpx.__version__}"


@dataclass(slots=True, frozen=True)
class Send:
    spec: _wire.RequestSpec


@dataclass(slots=True, frozen=True)
class Pause:
    seconds: float


Step: TypeAlias = Send | Pause
Outcome: TypeAlias = httpx.Response | httpx.HTTPError | None
Plan: TypeAlias = Generator[Step, Outcome, T]


def resolve_timeout(timeout: float | httpx.Timeout | NotGiven | None) -> httpx.Timeout:
    """`NOT_GIVEN` means the default (60 s, 10 s to connect); `None` means no timeout."""
    if isinstance(timeout, NotGiven):
        return DEFAULT_TIMEOUT
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


class Core:
    """Configuration plus every plan; holds no connection and never sleeps."""

    __slots__ = ("_api_key", "auto_idempotency_key", "base_url", "clock", "retry")

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        max_retries: int,
        clock: Clock,
        rng: random.Random | None,
        auto_idempotency_key: bool,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = _wire.normalize_base_url(base_url)
        self._api_key = _wire.resolve_api_key(api_key)
        self.retry = RetryPolicy(max_retries=max_retries, rng=rng or random.Random())
        self.clock = clock
        self.auto_idempotency_key = auto_idempotency_key

    def __repr__(self) -> str:  # never show the key
        return f"Core(base_url={self.base_url!r})"

    # -- requests ---------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, int] | None = None,
        json: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _wire.RequestSpec:
        """A request to the API itself: the only kind that carries the API key."""
        all_headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        all_headers.update(headers or {})
        return _wire.RequestSpec(method, self.base_url + path, all_headers, params, json)

    def create_spec(
        self,
        model: str,
        input: Mapping[str, Any],
        *,
        callback: str | Mapping[str, Any] | None = None,
        route: str | None = None,
        idempotency_key: str | None = None,
    ) -> _wire.RequestSpec:
        body = _wire.create_body(model, input, callback, route)
        if idempotency_key is None and self.auto_idempotency_key:
            idempotency_key = str(uuid.uuid4())  # os.urandom: never reproducible across clients
        headers = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = _wire.check_idempotency_key(idempotency_key)
        return self._api("POST", "/v1/tasks", json=body, headers=headers)

    def download_spec(self, source: TaskOutput | str, sink: Path | None) -> _wire.RequestSpec:
        """The output's URL; the API key goes only to the API's own origin."""
        url = _wire.resolve_download_url(
            self.base_url, source.url if isinstance(source, TaskOutput) else source
        )
        headers = {"Accept": "*/*"}
        if _wire.same_origin(url, httpx.URL(self.base_url)):
            headers["Authorization"] = f"Bearer {self._api_key}"
        return _wire.RequestSpec("GET", str(url), headers, follow_redirects=True, sink=sink)

    # -- plans ------------------------------------------------------------------------------

    def send(
        self, spec: _wire.RequestSpec, *, deadline: float | None = None
    ) -> Plan[httpx.Response]:
        """Send `spec` until it gets a 2xx answer or the retry policy gives up."""
        attempt = 0
        while True:
            outcome = yield Send(spec)
            try:
                return _wire.check_status(_as_response(outcome))
            except HiAPIError as error:
                delay = self._retry_delay(spec, error, attempt, deadline)
                if delay is None:
                    raise
            yield Pause(delay)
            attempt += 1

    def _retry_delay(
        self, spec: _wire.RequestSpec, error: HiAPIError, attempt: int, deadline: float | None
    ) -> float | None:
        delay = self.retry.delay(error, attempt=attempt, replayable=spec.replayable)
        if delay is None or (deadline is not None and self.clock() + delay > deadline):
            return None
        logger.info(
            "retrying %s %s in %.2f s (retry %d of %d) after: %s",
            spec.method,
            spec.url,
            delay,
            attempt + 1,
            self.retry.max_retries,
            error,
        )
        return delay

    def create(self, spec: _wire.RequestSpec) -> Plan[str]:
        """Send a create built by `create_spec`; its Idempotency-Key is the same on every try."""
        response = yield from self.send(spec)
        data = _wire.envelope_data(response)
        task_id = data.get("taskId")
        if not isinstance(task_id, str) or not task_id:
            raise MalformedResponseError(f"data.taskId: expected a string, got {task_id!r}")
        return task_id

    def retrieve(self, task_id: str) -> Plan[Task]:
        response = yield from self._get_task(task_id, None)
        return Task.from_dict(_wire.envelope_data(response))

    def _get_task(self, task_id: str, deadline: float | None) -> Plan[httpx.Response]:
        return self.send(self._api("GET", _wire.task_path(task_id)), deadline=deadline)

    def list(self, page: int = 1, size: int = 20) -> Plan[TaskPage]:
        _check_page(page, size)
        spec = self._api("GET", "/v1/tasks", params={"page": page, "size": size})
        response = yield from self.send(spec)
        return TaskPage.from_dict(_wire.envelope_data(response), page=page, size=size)

    def pager(self, size: int, max_pages: int) -> Pager:
        """A `Pager` for `iter_tasks`, its arguments checked now rather than at the first page."""
        _check_page(1, size)
        if max_pages < 1:
            raise ValueError("max_pages must be >= 1")
        return Pager(size, max_pages)

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = 300.0,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
    ) -> Plan[Task]:
        """Poll until the task is terminal: the task on `success`, `TaskFailedError` on `fail`."""
        _check_wait(timeout, poll_interval, max_poll_interval)
        deadline = None if timeout is None else self.clock() + timeout
        backoff = PollBackoff(poll_interval, max_poll_interval)
        while True:
            response = yield from self._get_task(task_id, deadline)
            task = Task.from_dict(_wire.envelope_data(response))
            if task.is_terminal:
                return _finish(task)
            hint = _wire.parse_retry_after(response.headers)
            yield Pause(self._poll_delay(task, backoff.next(), hint, deadline, timeout))

    def _poll_delay(
        self,
        task: Task,
        interval: float,
        hint: float | None,
        deadline: float | None,
        timeout: float | None,
    ) -> float:
        """The next pause: the backoff, at least the server's hint, never past the deadline."""
        delay = interval if hint is None else max(interval, hint)
        if deadline is None:
            return delay
        remaining = deadline - self.clock()
        if remaining <= 0 or (hint is not None and hint > remaining):
            raise WaitTimeoutError(
                f"task {task.task_id} still {task.status!r} after {timeout} s",
                task_id=task.task_id,
                timeout=timeout or 0.0,
                task=task,
            )
        return min(delay, remaining)


def _as_response(outcome: Outcome) -> httpx.Response:
    """The response, or the send's httpx error wrapped in this client's own."""
    if isinstance(outcome, httpx.Response):
        return outcome
    if isinstance(outcome, httpx.TimeoutException):
        error: APIConnectionError = APITimeoutError(f"request timed out: {outcome}")
    elif isinstance(outcome, httpx.HTTPError):
        error = APIConnectionError(f"connection error: {type(outcome).__name__}: {outcome}")
    else:  # pragma: no cover - a driver bug, not a network condition
        raise TypeError(f"a Send step must be answered with a response, got {outcome!r}")
    error.__cause__ = outcome
    raise error


def _finish(task: Task) -> Task:
    if task.status == TaskStatus.FAIL:
        detail = f"{task.error.code}: {task.error.message}" if task.error else "no error given"
        raise TaskFailedError(f"task {task.task_id} failed: {detail}", task=task)
    return task


def _check_page(page: int, size: int) -> None:
    if page < 1:
        raise ValueError("page must be >= 1")
    if not 1 <= size <= 100:
        raise ValueError("size must be between 1 and 100")


def _check_wait(timeout: float | None, poll_interval: float, max_poll_interval: float) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    if poll_interval <= 0 or max_poll_interval < poll_interval:
        raise ValueError("need 0 < poll_interval <= max_poll_interval")
