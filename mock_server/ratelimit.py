"""Per-key rate limits as the live API has them: 60 requests a minute and 10 at once.

Windows are whole minutes of the fake's clock. Every answer carries `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds at which the window ends); when
enforcement is off the counts are still kept and shown, and nothing is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .clock import Clock
from .errors import RateLimited

__all__ = ["RateLimiter"]

_WINDOW = 60
_PRUNE_AT = 10_000


@dataclass(slots=True)
class _Bucket:
    window: int
    count: int = 0
    active: int = 0


class RateLimiter:
    """Counts requests per bucket (an API key, or a client address without one)."""

    def __init__(
        self, clock: Clock, *, per_minute: int = 60, concurrent: int = 10, enforce: bool = True
    ) -> None:
        self.clock = clock
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.enforce = enforce
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: str) -> tuple[list[tuple[bytes, bytes]], RateLimited | None]:
        """Count one request in; returns the headers to send and the refusal, if any.

        A refused request is not counted and needs no `release`.
        """
        now = self.clock.now()
        window = int(now // _WINDOW)
        if len(self._buckets) > _PRUNE_AT:
            self._prune(window)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.window != window:
            bucket = self._buckets[key] = _Bucket(window, active=bucket.active if bucket else 0)
        reset = (window + 1) * _WINDOW
        refusal = self._refusal(bucket, reset - now) if self.enforce else None
        if refusal is None:
            bucket.count += 1
            bucket.active += 1
        remaining = max(self.per_minute - bucket.count, 0)
        headers = [
            (b"x-ratelimit-limit", b"%d" % self.per_minute),
            (b"x-ratelimit-remaining", b"%d" % remaining),
            (b"x-ratelimit-reset", b"%d" % reset),
        ]
        return headers, refusal

    def release(self, key: str) -> None:
        """One admitted request of `key` has been answered."""
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.active > 0:
            bucket.active -= 1

    def reset(self) -> None:
        self._buckets.clear()

    def _prune(self, window: int) -> None:
        # A bucket of a past window with nothing in flight says nothing any more: drop it, so
        # many keys or client addresses over a long run do not grow the table for ever.
        stale = [k for k, b in self._buckets.items() if b.window < window and not b.active]
        for key in stale:
            del self._buckets[key]

    def _refusal(self, bucket: _Bucket, seconds_left: float) -> RateLimited | None:
        if bucket.active >= self.concurrent:
            return RateLimited(
                f"too many concurrent requests: at most {self.concurrent} at once per key",
                retry_after=1,
            )
        if bucket.count >= self.per_minute:
            return RateLimited(
                f"rate limit exceeded: at most {self.per_minute} requests per minute per key",
                retry_after=max(math.ceil(seconds_left), 1),
            )
        return None
