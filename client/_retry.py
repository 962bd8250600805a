"""Decisions about time, without I/O: when to retry, how long to wait, when to stop paging."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

from .errors import (
    APIConnectionError,
    APIStatusError,
    HiAPIError,
    IdempotencyProcessingError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)
from .models import Task, TaskPage

#: Errors that say "not done, come back later": retried for every method.
_ASK_TO_RETRY = (RateLimitError, ServiceUnavailableError, IdempotencyProcessingError)
#: Server errors retried when a repeat is harmless (the first try may have done the work).
_SERVER_ERRORS_RETRIED = frozenset({500, 502, 504})


@dataclass(slots=True)
class RetryPolicy:
    """How many retries, and how long before each.

    A `Retry-After` is honoured exactly, never shortened: one longer than `max_retry_after` is
    not waited out at all, the error is raised (it carries `retry_after` for the caller). Without
    one, the wait is capped exponential backoff with "equal jitter" drawn from `rng`.
    """

    max_retries: int = 3
    rng: random.Random = field(default_factory=random.Random)
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, error: HiAPIError, *, attempt: int, replayable: bool) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or `None` to raise `error`."""
        if attempt >= self.max_retries or not _retryable(error, replayable):
            return None
        retry_after = error.retry_after if isinstance(error, APIStatusError) else None
        if retry_after is None:
            return self.backoff(attempt)
        return retry_after if retry_after <= self.max_retry_after else None

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt, 32))
        return ceiling * (0.5 + 0.5 * self.rng.random())


def _retryable(error: HiAPIError, replayable: bool) -> bool:
    if isinstance(error, _ASK_TO_RETRY):
        return True
    if isinstance(error, InternalServerError):
        return replayable and error.status_code in _SERVER_ERRORS_RETRIED
    if isinstance(error, APIConnectionError):
        cause = error.__cause__
        # A request httpx refused to send (LocalProtocolError) never left: retrying won't help.
        sent = not isinstance(cause, httpx.LocalProtocolError)
        return replayable and sent and isinstance(cause, httpx.TransportError)
    return False


@dataclass(slots=True)
class PollBackoff:
    """Poll intervals for `wait()`: `interval`, then times `factor` each time, up to `cap`."""

    interval: float
    cap: float
    factor: float = 1.5

    def next(self) -> float:
        current = self.interval
        self.interval = min(self.cap, self.interval * self.factor)
        return current


@dataclass(slots=True)
class Pager:
    """Walks `GET /v1/tasks` page by page, and knows when to stop.

    It stops at the end (by `total`, or a short page when `total` is missing), on an empty
    page, when the server answers another page than the one asked (out-of-range pages fall
    back to page 1 silently), when a page brings no task not already seen (a server that
    ignores `page`), and after `max_pages` pages whatever happens. Tasks seen on an earlier page
    are not yielded twice (a task created meanwhile shifts the newest-first list by one).
    """

    size: int
    max_pages: int
    page: int = 1
    done: bool = False
    seen: set[str] = field(default_factory=set)

    def next_page(self) -> int | None:
        if self.done or self.page > self.max_pages:
            return None
        return self.page

    def accept(self, result: TaskPage) -> tuple[Task, ...]:
        fresh = tuple(task for task in result.tasks if task.task_id not in self.seen)
        self.seen.update(task.task_id for task in fresh)
        self.done = not fresh or not result.has_more or result.page != self.page
        self.page += 1
        return fresh
