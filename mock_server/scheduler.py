"""One scheduler on the one clock: jobs due at a time on the fake's clock run, in time order, on
an event loop of their own.

Task statuses need no timers (they are read off the clock); what must happen at a time, callback
deliveries and their retries, is queued here. Advancing a manual clock wakes the scheduler, which
starts every job now due in `(when, order, arrival)` order, at most `concurrency` at once. Jobs
due within `together` seconds of the first of their group start together; a job due later
waits until every job of the group has handed off (`handed_off()`, or its end), so one big
clock jump still delivers callbacks in the order of their due times. The
loop runs in one daemon thread started on first use, so deliveries behave the same whether the
app is served by uvicorn or called in-process, and never hold up request handling.

    >>> import asyncio
    >>> from mock_server.clock import ManualClock
    >>> clock, ran = ManualClock(), []
    >>> scheduler = Scheduler(clock)
    >>> async def job() -> None:
    ...     ran.append(clock.now())
    >>> scheduler.at(clock.now() + 60, job)
    >>> clock.advance(60); scheduler.wait_idle(); ran == [clock.now()]
    True
    >>> scheduler.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock

__all__ = ["Job", "Scheduler", "handed_off"]

log = logging.getLogger("hiapi_mock.scheduler")

Job = Callable[[], Awaitable[None]]

_JOIN_TIMEOUT = 10.0
# How long a later job waits for the earlier ones to hand off before starting anyway, so a
# receiver that never answers delays the next callbacks by at most this much (wall seconds).
_HANDOFF_WAIT = 0.5
_HANDOFF: contextvars.ContextVar[_Handoff | None] = contextvars.ContextVar(
    "hiapi_mock_handoff", default=None
)


def handed_off() -> None:
    """Called by a running job once its effect is out (a request answered): the scheduler may
    start jobs due later. A job that never calls it hands off when it ends."""
    handoff = _HANDOFF.get()
    if handoff is not None:
        handoff.set()


class _Group:
    """Jobs started together; `done` once each has handed off."""

    __slots__ = ("done", "open", "start", "waited_from")

    def __init__(self, start: float) -> None:
        self.start = start  # the due time of its first job
        self.open = 0
        self.done = asyncio.Event()
        self.waited_from: float | None = None  # loop time a later job began to wait for it

    def waited_out(self, now: float) -> bool:
        """A later job has waited `_HANDOFF_WAIT` for this group: it starts anyway."""
        if self.waited_from is None:
            self.waited_from = now
        return now - self.waited_from >= _HANDOFF_WAIT

    def join(self) -> _Handoff:
        self.open += 1
        self.done.clear()
        return _Handoff(self)


class _Handoff:
    """One job's part of its group's handoff: given once, by `handed_off()` or the job's end."""

    __slots__ = ("_group",)

    def __init__(self, group: _Group) -> None:
        self._group: _Group | None = group

    def set(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.open -= 1
            if group.open == 0:
                group.done.set()


@dataclass(order=True, slots=True)
class _Entry:
    when: float
    order: float
    seq: int
    job: Job = field(compare=False)


class Scheduler:
    """Runs jobs when the clock reaches their time."""

    def __init__(self, clock: Clock, *, concurrency: int = 64, together: float = 1.0) -> None:
        self.clock = clock
        self.concurrency = concurrency
        # Due within this many seconds of the fake's clock: no order among them. (The live
        # API's callbacks for tasks ending in the same second have none either; waiting for
        # each answer in turn would make a jump over thousands of tasks crawl.)
        self.together = together
        self._queue: list[_Entry] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0  # jobs taken off the queue and not yet finished
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._close_hooks: list[Callable[[], Awaitable[None]]] = []

    # -- used from any thread -------------------------------------------------------------------

    def at(self, when: float, job: Job, *, order: float = 0.0) -> None:
        """Run `job` once the clock reaches `when`; equal times run by `order`, then arrival.

        After `close()` nothing runs any more, so nothing is queued.
        """
        if self._closing:
            return
        entry = _Entry(when, order, next(self._seq), job)
        with self._lock:
            heapq.heappush(self._queue, entry)
            earliest = self._queue[0] is entry
        self._ensure_running()
        if earliest:  # a later entry changes nothing the loop waits for: let it sleep
            self._nudge()

    def on_close(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` on the scheduler's loop before it stops (to close what lives there)."""
        self._close_hooks.append(hook)

    def queued(self) -> int:
        """Jobs waiting for their time."""
        return len(self._queue)

    def idle(self) -> bool:
        """Nothing is running and nothing is due now."""
        with self._lock:
            return self._idle_locked()

    def settle(self, timeout: float) -> bool:
        """Block until `idle()`, at most `timeout` seconds; whether it became idle."""
        self._nudge()
        with self._idle:
            return self._idle.wait_for(self._idle_locked, timeout)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until `idle()`, at most `timeout` seconds; AssertionError if it never is."""
        if not self.settle(timeout):
            with self._lock:
                raise AssertionError(
                    f"scheduler still busy after {timeout} s: {self._busy} running, "
                    f"{len(self._queue)} queued"
                )

    def reset(self) -> None:
        """Drop every queued job (running ones finish)."""
        with self._lock:
            self._queue.clear()
        self._nudge()

    def close(self) -> None:
        """Stop the loop and its thread (running jobs are cancelled)."""
        self._closing = True
        self._nudge()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT)
            self._thread = None

    # -- the loop ---------------------------------------------------------------------------------

    def _idle_locked(self) -> bool:
        due = bool(self._queue) and self._queue[0].when <= self.clock.now()
        return self._busy == 0 and not due

    def _nudge(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            # the loop may close between the check and the call
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is not None or self._closing:
                return
            ready = threading.Event()
            self._thread = threading.Thread(
                target=lambda: _run(self._main(ready)), name="hiapi-mock-scheduler",
                daemon=True,
            )  # fmt: skip
            self._thread.start()
        if not ready.wait(_JOIN_TIMEOUT):
            raise RuntimeError("the scheduler's event loop did not start")

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        running: set[asyncio.Task[None]] = set()
        group: _Group | None = None
        ready.set()
        while not self._closing:
            self._wake.clear()
            due = self._due_time()
            if len(running) >= self.concurrency or due is None:
                # Take nothing off the queue until a slot is free: what waits stays queued,
                # so reset() can drop it and an earlier arrival can still go first.
                await self._sleep(until=None if due is not None else self._next_time())
                continue
            if (
                group is not None
                and due >= group.start + self.together
                and not group.done.is_set()
                and not group.waited_out(self._loop.time())
            ):
                # A later job starts once the earlier ones have handed off (their requests
                # answered), so one big clock jump still delivers in time order.
                await self._sleep(until=None, handoff=group.done)
                continue
            entry = self._take_due()
            if entry is None:
                continue
            if group is None or entry.when >= group.start + self.together:
                group = _Group(entry.when)
            handoff = group.join()
            context = contextvars.copy_context()
            context.run(_HANDOFF.set, handoff)
            task = asyncio.create_task(self._run(entry, handoff), context=context)
            running.add(task)
            task.add_done_callback(running.discard)
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for hook in self._close_hooks:
            try:
                await hook()
            except Exception:
                log.exception("a scheduler close hook failed")

    def _due_time(self) -> float | None:
        with self._lock:
            if self._queue and self._queue[0].when <= self.clock.now():
                return self._queue[0].when
        return None

    def _next_time(self) -> float | None:
        with self._lock:
            return self._queue[0].when if self._queue else None

    def _take_due(self) -> _Entry | None:
        with self._lock:
            if self._queue and self._queue[0].when <= self.clock.now():
                self._busy += 1
                return heapq.heappop(self._queue)
        return None

    async def _sleep(self, until: float | None, handoff: asyncio.Event | None = None) -> None:
        """Until something is scheduled, a job ends or hands off, the clock reaches `until`,
        or close(); a wait for a handoff lasts at most `_HANDOFF_WAIT` wall seconds."""
        assert self._wake is not None
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        if until is not None:
            waits.add(asyncio.ensure_future(self.clock.sleep_until(until)))
        if handoff is not None:
            waits.add(asyncio.ensure_future(handoff.wait()))
        timeout = _HANDOFF_WAIT if handoff is not None else None
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _run(self, entry: _Entry, handoff: _Handoff) -> None:
        try:
            await entry.job()
        except Exception:
            log.exception("a scheduled job failed")
        finally:
            handoff.set()
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
            self._nudge()  # a slot is free


def _run(main: Coroutine[Any, Any, None]) -> None:
    """`asyncio.run`, on uvloop where it is installed (uvicorn[standard] brings it on the
    platforms it supports): callbacks are sent about twice as fast on it."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
