"""Tests for mock_server.scheduler: jobs run on the scheduler's own loop thread when the clock
reaches their time, in `(when, order, arrival)` order, at most `concurrency` at once.

The test code stays synchronous. Jobs that must stay running wait on a `Gate` that the test
thread opens through the job's loop (`call_soon_threadsafe`); every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from mock_server import scheduler as scheduler_module
from mock_server.clock import ManualClock, RealClock
from mock_server.scheduler import Job, Scheduler, handed_off

#: A bound on how long any wait here may take; a test that reaches it has already failed.
TIMEOUT = 5.0
#: How long to give the loop to (wrongly) do something it should not; only ever a bound.
BRIEFLY = 0.2
START = 1_767_225_600.0


class Gate:
    """Holds the jobs awaiting it until the test thread opens it; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._open:
                return
            self._waiters.append((loop, future))
        await future

    def open(self) -> None:
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(_release, future)


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Recorder:
    """What the jobs did, in order, written from the loop thread and read from the test."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._events: list[str] = []
        self._running = 0
        self.max_running = 0

    def add(self, event: str) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    @property
    def events(self) -> list[str]:
        with self._changed:
            return list(self._events)

    @property
    def running(self) -> int:
        with self._changed:
            return self._running

    def enter(self, name: str) -> None:
        with self._changed:
            self._running += 1
            self.max_running = max(self.max_running, self._running)
            self._events.append(name)
            self._changed.notify_all()

    def leave(self) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float = TIMEOUT) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self._events), timeout):
                raise AssertionError(f"not reached within {timeout} s; events: {self._events}")

    def wait_count(self, count: int, timeout: float = TIMEOUT) -> None:
        self.wait_for(lambda events: len(events) >= count, timeout)


@dataclass
class Rig:
    """A scheduler on a manual clock, the gates its jobs hold, and what the jobs did."""

    clock: ManualClock
    scheduler: Scheduler
    record: Recorder = field(default_factory=Recorder)
    gates: list[Gate] = field(default_factory=list)

    def gate(self) -> Gate:
        gate = Gate()
        self.gates.append(gate)
        return gate

    def job(self, name: str) -> Job:
        """A job that records its name when it starts."""

        async def run() -> None:
            self.record.add(name)

        return run

    def held(self, name: str, gate: Gate) -> Job:
        """A job that records its start, then stays running until `gate` opens."""

        async def run() -> None:
            self.record.enter(name)
            try:
                await gate.wait()
            finally:
                self.record.leave()

        return run

    def now_plus(self, seconds: float) -> float:
        return self.clock.now() + seconds


@pytest.fixture
def make_rig() -> Iterator[Callable[..., Rig]]:
    """Build rigs; at teardown every gate opens and every scheduler closes."""
    rigs: list[Rig] = []

    def make(concurrency: int = 64) -> Rig:
        clock = ManualClock(start=START)
        rig = Rig(clock, Scheduler(clock, concurrency=concurrency))
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for gate in rig.gates:
            gate.open()
        rig.scheduler.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


async def _current_thread(into: list[threading.Thread]) -> None:
    into.append(threading.current_thread())


def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until `condition()` holds, polling at most `timeout` seconds; fail otherwise."""
    pause = threading.Event()  # never set: its timed wait is a bounded pause between checks
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        pause.wait(0.005)


def taken_for_a_slot(rig: Rig) -> None:
    """Wait until a due job is waiting for a slot: every slot busy, the job still queued."""
    eventually(lambda: rig.scheduler.queued() >= 1 and not rig.scheduler.idle())


def loop_thread(rig: Rig) -> threading.Thread:
    """The scheduler's loop thread, found by running a job on it."""
    found: list[threading.Thread] = []

    async def probe() -> None:
        found.append(threading.current_thread())

    rig.scheduler.at(rig.clock.now(), probe)
    rig.scheduler.wait_idle(TIMEOUT)
    assert len(found) == 1
    return found[0]


# --- time ---------------------------------------------------------------------------------


def test_a_future_job_waits_for_the_clock(rig: Rig) -> None:
    rig.scheduler.at(rig.now_plus(60), rig.job("later"))
    rig.clock.advance(59.9)
    # A job due now runs after everything due before it: once it has run, the loop has passed
    # the point where it would have started "later" had it (wrongly) been due.
    rig.scheduler.at(rig.clock.now(), rig.job("marker"))
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["marker"]
    assert rig.scheduler.queued() == 1

    rig.clock.advance(0.1)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["marker", "later"]
    assert rig.scheduler.queued() == 0


def test_a_job_sees_the_clock_at_or_after_its_time(rig: Rig) -> None:
    seen: list[float] = []
    due = rig.now_plus(30)

    async def job() -> None:
        seen.append(rig.clock.now())

    rig.scheduler.at(due, job)
    rig.clock.advance(45)
    rig.scheduler.wait_idle(TIMEOUT)
    assert seen == [START + 45]
    assert seen[0] >= due


def test_jobs_start_in_when_order_arrival_order(rig: Rig) -> None:
    # Scheduled out of order on purpose: arrival alone would give another order.
    rig.scheduler.at(rig.now_plus(20), rig.job("t20"))
    rig.scheduler.at(rig.now_plus(10), rig.job("t10-order0-first"))
    rig.scheduler.at(rig.now_plus(10), rig.job("t10-order1"), order=1)
    rig.scheduler.at(rig.now_plus(10), rig.job("t10-order0-second"))
    rig.scheduler.at(rig.now_plus(10), rig.job("t10-order-1"), order=-1)
    rig.scheduler.at(rig.now_plus(5), rig.job("t5-order9"), order=9)
    rig.scheduler.at(rig.now_plus(30), rig.job("t30"))
    assert rig.scheduler.queued() == 7

    # One advance past several due times starts them all, in time order.
    rig.clock.advance(20)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == [
        "t5-order9",
        "t10-order-1",
        "t10-order0-first",
        "t10-order0-second",
        "t10-order1",
        "t20",
    ]
    assert rig.scheduler.queued() == 1

    rig.clock.advance(10)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events[-1] == "t30"
    assert rig.scheduler.queued() == 0


def test_jobs_run_one_due_time_at_a_time_as_the_clock_steps(rig: Rig) -> None:
    for seconds in (3, 1, 2):
        rig.scheduler.at(rig.now_plus(seconds), rig.job(f"t{seconds}"))
    for step, expected in enumerate((["t1"], ["t1", "t2"], ["t1", "t2", "t3"]), start=1):
        rig.clock.advance(1)
        rig.scheduler.wait_idle(TIMEOUT)
        assert rig.record.events == expected, f"after {step} s"


def test_equal_times_and_orders_run_in_arrival_order(rig: Rig) -> None:
    names = [f"job{i}" for i in range(20)]
    for name in names:
        rig.scheduler.at(rig.now_plus(1), rig.job(name), order=0.5)
    rig.clock.advance(1)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == names


@pytest.mark.parametrize("offset", [0.0, -1.0, -3600.0])
def test_a_job_due_now_or_in_the_past_runs_promptly(rig: Rig, offset: float) -> None:
    rig.scheduler.at(rig.now_plus(offset), rig.job("due"))
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["due"]
    assert rig.clock.now() == START  # without the clock moving


def test_jobs_scheduled_from_a_running_job_run_when_their_time_comes(rig: Rig) -> None:
    attempts: list[float] = []

    async def deliver() -> None:
        attempts.append(rig.clock.now())
        if len(attempts) < 3:  # a retry, one minute after each failure
            rig.scheduler.at(rig.clock.now() + 60, deliver)

    rig.scheduler.at(rig.clock.now(), deliver)
    rig.scheduler.wait_idle(TIMEOUT)
    assert attempts == [START]
    assert rig.scheduler.queued() == 1

    rig.clock.advance(59)
    rig.scheduler.wait_idle(TIMEOUT)
    assert attempts == [START]

    rig.clock.advance(1)
    rig.scheduler.wait_idle(TIMEOUT)
    assert attempts == [START, START + 60]

    rig.clock.advance(60)
    rig.scheduler.wait_idle(TIMEOUT)
    assert attempts == [START, START + 60, START + 120]
    assert rig.scheduler.queued() == 0


def test_a_job_scheduled_due_now_from_a_job_runs_in_the_same_wait(rig: Rig) -> None:
    async def first() -> None:
        rig.record.add("first")
        rig.scheduler.at(rig.clock.now(), rig.job("follow-up"))

    rig.scheduler.at(rig.clock.now(), first)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["first", "follow-up"]


def test_jobs_run_on_one_thread_that_is_not_the_callers(rig: Rig) -> None:
    threads: list[threading.Thread] = []
    for _ in range(3):
        rig.scheduler.at(rig.clock.now(), lambda: _current_thread(threads))
    rig.scheduler.wait_idle(TIMEOUT)
    assert len(threads) == 3
    assert len(set(threads)) == 1
    assert threads[0] is not threading.current_thread()
    assert threads[0].daemon


# --- concurrency --------------------------------------------------------------------------


def test_at_most_concurrency_jobs_run_at_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(concurrency=3)
    gates = [rig.gate() for _ in range(7)]
    for i, gate in enumerate(gates):
        rig.scheduler.at(rig.clock.now(), rig.held(f"job{i}", gate))

    rig.record.wait_count(3)
    # The rest must wait: give the loop a moment to (wrongly) start a fourth.
    with pytest.raises(AssertionError, match="still busy"):
        rig.scheduler.wait_idle(BRIEFLY)
    assert rig.record.events == ["job0", "job1", "job2"]
    assert rig.record.running == 3

    # Each slot freed lets exactly the next one in.
    gates[1].open()
    rig.record.wait_count(4)
    assert rig.record.events[3] == "job3"
    gates[0].open()
    gates[2].open()
    rig.record.wait_count(6)
    assert rig.record.events == [f"job{i}" for i in range(6)]

    for gate in gates:
        gate.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == [f"job{i}" for i in range(7)]
    assert rig.record.max_running == 3
    assert rig.record.running == 0


def test_concurrency_one_runs_jobs_strictly_one_after_another(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(concurrency=1)
    gates = [rig.gate() for _ in range(3)]
    for i, gate in enumerate(gates):
        rig.scheduler.at(rig.now_plus(i), rig.held(f"job{i}", gate))
    rig.clock.advance(5)
    for i, gate in enumerate(gates):
        rig.record.wait_count(i + 1)
        assert rig.record.running == 1
        gate.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["job0", "job1", "job2"]
    assert rig.record.max_running == 1


def test_default_concurrency_runs_many_jobs_together(rig: Rig) -> None:
    gate = rig.gate()
    for i in range(20):
        rig.scheduler.at(rig.clock.now(), rig.held(f"job{i}", gate))
    rig.record.wait_count(20)
    assert rig.record.running == 20
    gate.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.running == 0


def test_an_earlier_job_arriving_while_slots_are_full_still_starts_first(
    make_rig: Callable[..., Rig],
) -> None:
    """When a slot frees, every due job competes for it in `(when, order, arrival)` order,
    including one that arrived while all slots were busy."""
    rig = make_rig(concurrency=1)
    gate = rig.gate()
    rig.scheduler.at(rig.clock.now(), rig.held("running", gate))
    rig.scheduler.at(rig.now_plus(10), rig.job("due-at-10"))
    rig.record.wait_count(1)
    rig.clock.advance(10)
    taken_for_a_slot(rig)
    rig.scheduler.at(rig.now_plus(-5), rig.job("due-at-5"))
    gate.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["running", "due-at-5", "due-at-10"]


# --- failures -----------------------------------------------------------------------------


def test_a_failing_job_is_logged_and_later_jobs_still_run(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        rig.record.add("boom")
        raise RuntimeError("delivery exploded")

    caplog.set_level(logging.ERROR, logger="hiapi_mock.scheduler")
    rig.scheduler.at(rig.now_plus(1), boom)
    rig.scheduler.at(rig.now_plus(1), rig.job("same-time"))
    rig.scheduler.at(rig.now_plus(2), rig.job("later"))
    rig.clock.advance(1)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["boom", "same-time"]

    failures = [r for r in caplog.records if r.name == "hiapi_mock.scheduler"]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    assert failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], RuntimeError)
    assert "delivery exploded" in caplog.text

    rig.clock.advance(1)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["boom", "same-time", "later"]
    assert rig.scheduler.idle()


def test_a_failing_job_frees_its_slot(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(concurrency=1)

    async def boom() -> None:
        raise ValueError("no")

    for _ in range(3):
        rig.scheduler.at(rig.clock.now(), boom)
    rig.scheduler.at(rig.clock.now(), rig.job("after"))
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["after"]


# --- idle, wait_idle ----------------------------------------------------------------------


def test_a_new_scheduler_is_idle(rig: Rig) -> None:
    assert rig.scheduler.idle()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.scheduler.queued() == 0


def test_future_jobs_do_not_make_the_scheduler_busy(rig: Rig) -> None:
    rig.scheduler.at(rig.now_plus(60), rig.job("later"))
    assert rig.scheduler.idle()
    rig.scheduler.wait_idle(BRIEFLY)
    assert rig.record.events == []


def test_a_due_job_makes_the_scheduler_busy_until_it_has_run(rig: Rig) -> None:
    rig.scheduler.at(rig.now_plus(60), rig.job("later"))
    rig.clock.advance(60)
    # Due and perhaps not yet taken, or taken and running: busy either way until it has run.
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["later"]
    assert rig.scheduler.idle()


def test_wait_idle_times_out_while_a_job_is_held_and_returns_once_released(rig: Rig) -> None:
    gate = rig.gate()
    rig.scheduler.at(rig.clock.now(), rig.held("held", gate))
    rig.record.wait_count(1)
    assert not rig.scheduler.idle()

    began = time.monotonic()
    with pytest.raises(AssertionError, match=r"still busy after 0\.2 s: 1 running, 0 queued"):
        rig.scheduler.wait_idle(BRIEFLY)
    assert time.monotonic() - began < TIMEOUT  # a bound, not a timing assertion
    assert not rig.scheduler.idle()

    gate.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.scheduler.idle()
    assert rig.record.running == 0


def test_wait_idle_counts_due_jobs_waiting_for_a_slot(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(concurrency=1)
    gate = rig.gate()
    rig.scheduler.at(rig.clock.now(), rig.held("held", gate))
    rig.scheduler.at(rig.clock.now(), rig.job("waiting"))
    rig.record.wait_count(1)
    with pytest.raises(AssertionError, match="still busy"):
        rig.scheduler.wait_idle(BRIEFLY)
    assert not rig.scheduler.idle()
    gate.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["held", "waiting"]


# --- reset, queued ------------------------------------------------------------------------


def test_queued_counts_jobs_waiting_for_their_time(rig: Rig) -> None:
    assert rig.scheduler.queued() == 0
    for seconds in (10, 20, 30):
        rig.scheduler.at(rig.now_plus(seconds), rig.job(f"t{seconds}"))
    assert rig.scheduler.queued() == 3
    rig.clock.advance(15)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.scheduler.queued() == 2
    rig.clock.advance(15)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.scheduler.queued() == 0


def test_reset_drops_queued_jobs(rig: Rig) -> None:
    for seconds in (10, 20, 30):
        rig.scheduler.at(rig.now_plus(seconds), rig.job(f"t{seconds}"))
    rig.scheduler.reset()
    assert rig.scheduler.queued() == 0
    rig.clock.advance(60)
    rig.scheduler.at(rig.clock.now(), rig.job("marker"))
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["marker"]


def test_reset_drops_due_jobs_not_yet_started(rig: Rig) -> None:
    rig.scheduler.at(rig.now_plus(10), rig.job("dropped"))
    rig.scheduler.reset()
    rig.clock.advance(10)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == []


def test_reset_lets_running_jobs_finish_and_keeps_the_scheduler_usable(rig: Rig) -> None:
    gate = rig.gate()
    rig.scheduler.at(rig.clock.now(), rig.held("running", gate))
    rig.scheduler.at(rig.now_plus(10), rig.job("dropped"))
    rig.record.wait_count(1)
    rig.scheduler.reset()
    assert rig.scheduler.queued() == 0
    gate.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.running == 0

    rig.scheduler.at(rig.now_plus(20), rig.job("after-reset"))
    rig.clock.advance(20)
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["running", "after-reset"]


def test_reset_drops_due_jobs_waiting_for_a_slot(make_rig: Callable[..., Rig]) -> None:
    """`reset()` drops every job that has not started; a due job blocked only by the concurrency
    limit has not started, and `queued()` already stops counting it."""
    rig = make_rig(concurrency=1)
    gate = rig.gate()
    rig.scheduler.at(rig.clock.now(), rig.held("running", gate))
    rig.scheduler.at(rig.clock.now(), rig.job("waiting-for-a-slot"))
    rig.record.wait_count(1)
    taken_for_a_slot(rig)
    assert rig.record.events == ["running"]
    rig.scheduler.reset()
    assert rig.scheduler.queued() == 0
    gate.open()
    rig.scheduler.at(rig.clock.now(), rig.job("marker"))
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["running", "marker"]


# --- close --------------------------------------------------------------------------------


def test_close_stops_the_loop_thread(rig: Rig) -> None:
    thread = loop_thread(rig)
    assert thread.is_alive()
    rig.scheduler.close()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_close_runs_on_close_hooks_on_the_loop_in_order(rig: Rig) -> None:
    ran: list[tuple[str, threading.Thread, asyncio.AbstractEventLoop]] = []
    job_loops: list[asyncio.AbstractEventLoop] = []

    async def job() -> None:
        job_loops.append(asyncio.get_running_loop())

    def hook(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await asyncio.sleep(0)  # a real coroutine, awaited on the loop
            ran.append((name, threading.current_thread(), asyncio.get_running_loop()))

        return run

    rig.scheduler.on_close(hook("first"))
    rig.scheduler.on_close(hook("second"))
    thread = loop_thread(rig)
    rig.scheduler.at(rig.clock.now(), job)
    rig.scheduler.wait_idle(TIMEOUT)
    assert ran == []

    rig.scheduler.close()
    assert [name for name, _, _ in ran] == ["first", "second"]
    assert all(where is thread for _, where, _ in ran)
    assert all(loop is job_loops[0] for _, _, loop in ran)
    assert job_loops[0].is_closed()


def test_close_cancels_a_job_still_blocked(rig: Rig) -> None:
    gate = rig.gate()
    outcome: list[str] = []

    async def blocked() -> None:
        rig.record.add("started")
        try:
            await gate.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")

    thread = loop_thread(rig)
    rig.scheduler.at(rig.clock.now(), blocked)
    rig.record.wait_count(1)
    rig.scheduler.close()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert outcome == ["cancelled"]


def test_close_cancels_blocked_jobs_while_others_wait_for_a_slot(
    make_rig: Callable[..., Rig],
) -> None:
    """A full scheduler (every slot held, more jobs due) must still close promptly."""
    rig = make_rig(concurrency=1)
    gate = rig.gate()
    outcome: list[str] = []

    async def blocked() -> None:
        rig.record.add("started")
        try:
            await gate.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    thread = loop_thread(rig)
    rig.scheduler.at(rig.clock.now(), blocked)
    rig.scheduler.at(rig.clock.now(), rig.job("waiting-for-a-slot"))
    rig.record.wait_count(1)
    taken_for_a_slot(rig)

    closer = threading.Thread(target=rig.scheduler.close, daemon=True)
    closer.start()
    closer.join(TIMEOUT)
    finished = not closer.is_alive()
    gate.open()  # free the loop either way, so a failure here leaves no thread behind
    closer.join(TIMEOUT)
    assert finished, "close() did not return while a due job waited for a slot"
    assert not thread.is_alive()
    assert outcome == ["cancelled"]
    assert rig.record.events == ["started"]


def test_close_twice_and_close_unused_are_harmless(make_rig: Callable[..., Rig]) -> None:
    unused = make_rig()
    unused.scheduler.close()
    unused.scheduler.close()

    used = make_rig()
    thread = loop_thread(used)
    used.scheduler.close()
    used.scheduler.close()
    assert not thread.is_alive()


def test_close_drops_jobs_not_yet_due(rig: Rig) -> None:
    thread = loop_thread(rig)
    rig.scheduler.at(rig.now_plus(10), rig.job("never"))
    rig.scheduler.close()
    rig.clock.advance(10)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert rig.record.events == []


# --- on a real clock ----------------------------------------------------------------------


def test_real_clock_runs_a_job_when_fast_time_reaches_it() -> None:
    clock = RealClock(start=START, speed=1000)
    scheduler = Scheduler(clock)
    ran = threading.Event()
    seen: list[float] = []
    due = clock.now() + 5  # 5 ms of wall time at this speed

    async def job() -> None:
        seen.append(clock.now())
        ran.set()

    try:
        scheduler.at(due, job)
        assert ran.wait(TIMEOUT), "the job did not run within the bound"
        scheduler.wait_idle(TIMEOUT)
        assert len(seen) == 1
        assert seen[0] >= due
        assert scheduler.queued() == 0
    finally:
        scheduler.close()


# -- handing off: order between due times, none within `together` ---------------------------------


def test_jobs_due_within_together_start_at_once_and_later_ones_wait_for_them(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_module, "_HANDOFF_WAIT", 60.0)  # no starting anyway here
    first, second = rig.gate(), rig.gate()
    rig.scheduler.at(rig.now_plus(1), rig.held("A", first))
    rig.scheduler.at(rig.now_plus(1.5), rig.held("B", second))  # within a second of A
    rig.scheduler.at(rig.now_plus(2), rig.job("C"))  # a second after A: waits for A and B
    rig.clock.advance(3)
    rig.record.wait_count(2)
    assert (rig.record.events, rig.record.running) == (["A", "B"], 2)
    first.open()
    rig.record.wait_for(lambda events: rig.record.running == 1)
    assert rig.record.events == ["A", "B"]  # B has not handed off yet
    second.open()
    rig.scheduler.wait_idle(TIMEOUT)
    assert rig.record.events == ["A", "B", "C"]


def test_a_job_that_hands_off_lets_later_ones_start_while_it_runs(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler_module, "_HANDOFF_WAIT", 60.0)
    gate = rig.gate()

    async def answered_then_busy() -> None:
        rig.record.enter("A")
        handed_off()
        try:
            await gate.wait()
        finally:
            rig.record.leave()

    rig.scheduler.at(rig.now_plus(1), answered_then_busy)
    rig.scheduler.at(rig.now_plus(5), rig.job("later"))
    rig.clock.advance(5)
    rig.record.wait_count(2)
    assert rig.record.events == ["A", "later"] and rig.record.running == 1


def test_a_group_that_never_hands_off_holds_later_jobs_only_briefly(rig: Rig) -> None:
    gate = rig.gate()  # opened only at teardown: like a receiver that never answers
    rig.scheduler.at(rig.now_plus(1), rig.held("stuck", gate))
    rig.scheduler.at(rig.now_plus(10), rig.job("later"))
    rig.clock.advance(10)
    rig.record.wait_count(2)  # within TIMEOUT, though "stuck" still runs
    assert rig.record.events == ["stuck", "later"] and rig.record.running == 1
