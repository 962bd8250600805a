"""The one clock the fake reads: task progress, expiry, idempotency windows and rate limits.

Two clocks behind one Protocol:

- `ManualClock` stands still until a test calls `advance()`; sleepers wake in time order.
- `RealClock` follows the wall clock from a start time, faster or slower by a speed factor
  (`speed=0` freezes it).

Times are Unix seconds as floats.

    >>> clock = ManualClock(start=1_767_225_600.0)
    >>> clock.advance(90)
    >>> clock.now()
    1767225690.0
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_START", "Clock", "ManualClock", "RealClock"]

#: 2026-01-01T00:00:00Z: where a manual clock starts unless told otherwise.
DEFAULT_START = 1_767_225_600.0

# A real clock's sleeper re-reads the clock at least this often (seconds of wall time), so a
# change of speed is noticed without a wake-up channel.
_MAX_NAP = 0.25


@runtime_checkable
class Clock(Protocol):
    """What the fake needs of time."""

    def now(self) -> float:
        """Current time, Unix seconds."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once `now() >= when`."""
        ...

    def reset(self) -> None:
        """Back to the start time."""
        ...


@dataclass(order=True, slots=True)
class _Sleeper:
    when: float
    seq: int
    loop: asyncio.AbstractEventLoop = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class ManualClock:
    """A clock that moves only when told to. Safe to advance from another thread."""

    def __init__(self, start: float = DEFAULT_START) -> None:
        self.start = start
        self._now = start
        self._lock = threading.Lock()
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake, in time order, whoever was sleeping until then."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        """Jump to `when` (never backwards)."""
        with self._lock:
            if when < self._now:
                raise ValueError("a clock cannot go backwards")
            self._now = when
            due = []
            while self._sleepers and self._sleepers[0].when <= when:
                due.append(heapq.heappop(self._sleepers))
        for sleeper in due:
            _notify(sleeper, _wake)

    async def sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._now >= when:
                return
            future: asyncio.Future[None] = loop.create_future()
            sleeper = _Sleeper(when, next(self._seq), loop, future)
            heapq.heappush(self._sleepers, sleeper)
        try:
            await future
        finally:
            if not future.done() or future.cancelled():
                self._forget(sleeper)

    def _forget(self, sleeper: _Sleeper) -> None:
        # A cancelled sleeper leaves the queue at once, so pending() counts only real waiters.
        with self._lock:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)
                heapq.heapify(self._sleepers)

    def pending(self) -> int:
        """How many sleepers are waiting for the clock to move."""
        return len(self._sleepers)

    def reset(self) -> None:
        with self._lock:
            self._now = self.start
            sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            _notify(sleeper, _cancel)


class RealClock:
    """The wall clock from `start` (default: now), running `speed` times as fast."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.start = time.time() if start is None else start
        self.initial_speed = speed
        self._base = self.start
        self._t0 = time.monotonic()
        self.speed = speed

    def now(self) -> float:
        return self._base + (time.monotonic() - self._t0) * self.speed

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on; time already passed stays passed."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._base, self._t0, self.speed = self.now(), time.monotonic(), speed

    async def sleep_until(self, when: float) -> None:
        while (left := when - self.now()) > 0:
            nap = left / self.speed if self.speed else _MAX_NAP
            await asyncio.sleep(min(nap, _MAX_NAP))

    def reset(self) -> None:
        self._base, self._t0, self.speed = self.start, time.monotonic(), self.initial_speed


def _notify(sleeper: _Sleeper, action: Callable[[asyncio.Future[None]], None]) -> None:
    # The sleeper's loop may be gone (its asyncio.run ended); then nobody is waiting.
    if not sleeper.future.done() and not sleeper.loop.is_closed():
        with contextlib.suppress(RuntimeError):
            sleeper.loop.call_soon_threadsafe(action, sleeper.future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _cancel(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.cancel()
