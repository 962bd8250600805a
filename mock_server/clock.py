"""The one clock the fake reads: task progress, expiry, idempotency windows and rate limits.

Two clocks behind one Protocol:

- `ManualClock` stands still until a test calls `advance()`; sleepers wake in time order.
- `RealClock` follows the wall clock from a start time, faster or slower by a speed factor
  (`speed=0` freezes it).

Both are one class underneath: a manual clock is a real clock at speed 0, and either can be
advanced, frozen or sped up while it runs. `on_change` tells a listener (a durable store) each
time the clock is moved or its speed changes; `resume` puts it back where a `ClockReading` says.

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

__all__ = ["DEFAULT_START", "Clock", "ClockReading", "ManualClock", "RealClock"]

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


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The clock at one moment: its time, its speed, and the wall clock's `time.time()` then.

    Enough to continue it later: at wall time `w` it reads `now + (w - wall) * speed`.
    """

    now: float
    speed: float
    wall: float

    def resumed(self, wall: float) -> float:
        """What the clock reads at wall time `wall`, had it kept running (never less than
        `now`, even if the wall clock went back)."""
        return self.now + max(wall - self.wall, 0.0) * self.speed


ClockListener = Callable[[ClockReading], None]


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
        self._listeners: list[ClockListener] = []

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
            self._changed()
        self._wake_due()

    def set(self, when: float) -> None:
        """Jump to `when` (never backwards)."""
        with self._lock:
            if when < self.now():
                raise ValueError("a clock cannot go backwards")
            self._rebase(when)
            self._changed()
        self._wake_due()

    def set_speed(self, speed: float) -> None:
        """Run `speed` fake seconds per wall second from now on; time already passed stays."""
        _check_speed(speed)
        self._respeed(self.now, speed)

    def resume(self, reading: ClockReading) -> None:
        """Continue from a reading taken earlier (by another process, before a restart): the
        time it would show now had it kept running, at its speed. Unlike `set`, this may move
        the clock back, so call it before anything sleeps on it."""
        _check_speed(reading.speed)
        self._respeed(lambda: reading.resumed(time.time()), reading.speed)

    def reading(self) -> ClockReading:
        """The clock now, with the wall time, as `resume` takes it."""
        with self._lock:
            return self._reading()

    def on_change(self, listener: ClockListener) -> Callable[[], None]:
        """Call `listener` with a reading after every advance, set, speed change, reset or
        resume (never for time merely passing: a reading already says how it runs). Returns
        a function that stops it. Listeners run under the clock's lock: keep them quick."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return stop

    def _respeed(self, when: Callable[[], float], speed: float) -> None:
        with self._lock:
            self._rebase(when())
            self._speed = speed
            self._changed()
            sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:  # each works out its wait again at the new time and speed
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
            self._changed()
            sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            _notify(sleeper, _cancel)

    def _rebase(self, when: float) -> None:
        self._base, self._t0 = when, time.monotonic()

    def _reading(self) -> ClockReading:
        return ClockReading(self.now(), self._speed, time.time())

    def _changed(self) -> None:
        # Under the lock, so a listener sees the changes in the order they happened.
        if self._listeners:
            reading = self._reading()
            for listener in self._listeners:
                listener(reading)

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
