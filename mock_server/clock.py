"""The one clock the fake reads: task progress, expiry, idempotency windows and rate limits.

Two clocks behind one Protocol:

- `ManualClock` stands still until a test calls `advance()`; sleepers wake in time order.
- `RealClock` follows the wall clock from a start time, faster or slower by a speed factor
  (`speed=0` freezes it).

Both are one class underneath: a manual clock is a real clock at speed 0, and either can be
advanced, frozen or sped up while it runs.

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
    """A clock that moves only when told to (or, with a speed, also with the wall clock).

    Safe to drive from another thread than the sleepers'. `advance`, `set`, `set_speed` and
    `freeze` are the whole control surface of the fake's time.
    """

    def __init__(self, start: float = DEFAULT_START, speed: float = 0.0) -> None:
        _check_speed(speed)
        self.start = start
        self.initial_speed = speed
        self._base = start
        self._t0 = time.monotonic()
        self._speed = speed
        self._lock = threading.Lock()
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    @property
    def speed(self) -> float:
        """Fake seconds per wall second (0: frozen)."""
        return self._speed

    def now(self) -> float:
        if not self._speed:
            return self._base
        return self._base + (time.monotonic() - self._t0) * self._speed

    def advance(self, seconds: float) -> None:
        """Move time forward and wake, in time order, whoever was sleeping until then."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._rebase(self.now() + seconds)
        self._wake_due()

    def set(self, when: float) -> None:
        """Jump to `when` (never backwards)."""
        with self._lock:
            if when < self.now():
                raise ValueError("a clock cannot go backwards")
            self._rebase(when)
        self._wake_due()

    def set_speed(self, speed: float) -> None:
        """Run `speed` fake seconds per wall second from now on; time already passed stays."""
        _check_speed(speed)
        with self._lock:
            self._rebase(self.now())
            self._speed = speed
            sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:  # each works out its wait again at the new speed
            _notify(sleeper, _wake)

    def freeze(self) -> None:
        """Stop the clock where it is (advance still moves it)."""
        self.set_speed(0.0)

    async def sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                now = self.now()
                if now >= when:
                    return
                future: asyncio.Future[None] = loop.create_future()
                sleeper = _Sleeper(when, next(self._seq), loop, future)
                heapq.heappush(self._sleepers, sleeper)
                nap = (when - now) / self._speed if self._speed else None
            try:
                await asyncio.wait({future}, timeout=nap)
            finally:
                self._forget(sleeper)
            if future.cancelled():
                raise asyncio.CancelledError

    def pending(self) -> int:
        """How many sleepers are waiting for the clock to move."""
        return len(self._sleepers)

    def reset(self) -> None:
        """Back to the start time and speed; whoever was sleeping is cancelled."""
        with self._lock:
            self._base, self._t0, self._speed = self.start, time.monotonic(), self.initial_speed
            sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            _notify(sleeper, _cancel)

    def _rebase(self, when: float) -> None:
        self._base, self._t0 = when, time.monotonic()

    def _wake_due(self) -> None:
        with self._lock:
            now, due = self.now(), []
            while self._sleepers and self._sleepers[0].when <= now:
                due.append(heapq.heappop(self._sleepers))
        for sleeper in due:
            _notify(sleeper, _wake)

    def _forget(self, sleeper: _Sleeper) -> None:
        # A sleeper that stopped waiting leaves the queue at once, so pending() counts only
        # real waiters.
        with self._lock:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)
                heapq.heapify(self._sleepers)


class RealClock(ManualClock):
    """The wall clock from `start` (default: now), running `speed` times as fast."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        super().__init__(time.time() if start is None else start, speed)


def _check_speed(speed: float) -> None:
    if speed < 0:
        raise ValueError("speed must be >= 0")


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
