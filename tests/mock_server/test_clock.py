"""Tests for mock_server.clock: the manual clock tests advance, and the real one with a speed."""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import pytest

from mock_server.clock import DEFAULT_START, Clock, ManualClock, RealClock

#: A bound on how long anything here may take; a test that needs it has already failed.
TIMEOUT = 5.0


async def settle() -> None:
    """Let the loop run every callback and task step that is already due (no wall time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


# --- ManualClock: reading and moving ----------------------------------------------------


def test_manual_clock_starts_at_the_default_start() -> None:
    clock = ManualClock()
    assert clock.now() == DEFAULT_START == 1_767_225_600.0
    assert clock.start == DEFAULT_START


def test_manual_clock_stands_still_until_advanced() -> None:
    clock = ManualClock(start=1000.0)
    assert clock.now() == clock.now() == 1000.0
    clock.advance(90)
    assert clock.now() == 1090.0
    clock.advance(0.25)
    assert clock.now() == 1090.25


def test_manual_clock_set_jumps_forward() -> None:
    clock = ManualClock(start=1000.0)
    clock.set(5000.5)
    assert clock.now() == 5000.5
    clock.set(5000.5)  # standing still is allowed
    assert clock.now() == 5000.5


def test_manual_clock_advance_by_zero_is_allowed() -> None:
    clock = ManualClock(start=1000.0)
    clock.advance(0)
    assert clock.now() == 1000.0


def test_manual_clock_cannot_advance_backwards() -> None:
    clock = ManualClock(start=1000.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    assert clock.now() == 1000.0


def test_manual_clock_cannot_be_set_backwards() -> None:
    clock = ManualClock(start=1000.0)
    clock.advance(10)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(1009.999)
    assert clock.now() == 1010.0


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(ManualClock(), Clock)
    assert isinstance(RealClock(speed=0), Clock)


# --- ManualClock: sleepers --------------------------------------------------------------


def test_sleepers_wake_in_time_order_as_the_clock_passes_them() -> None:
    clock = ManualClock(start=0.0)
    woken: list[str] = []

    async def sleeper(name: str, when: float) -> None:
        await clock.sleep_until(when)
        woken.append(name)

    async def main() -> None:
        # Created out of time order, so waking in creation order would be caught.
        tasks = {
            name: asyncio.create_task(sleeper(name, when))
            for name, when in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("d", 40.0))
        }
        await settle()
        assert clock.pending() == 4
        assert woken == []

        clock.advance(9.999)
        await settle()
        assert woken == []
        assert clock.pending() == 4

        clock.advance(0.001)  # exactly 10: "a" is due
        await settle()
        assert woken == ["a"]
        assert tasks["a"].done()
        assert not tasks["b"].done()
        assert clock.pending() == 3

        clock.advance(15)  # 25: "b" only
        await settle()
        assert woken == ["a", "b"]
        assert clock.pending() == 2

        clock.advance(100)  # past both remaining ones at once: still in time order
        await settle()
        assert woken == ["a", "b", "c", "d"]
        assert clock.pending() == 0
        assert all(task.done() and task.exception() is None for task in tasks.values())

    asyncio.run(main())


def test_sleepers_passed_in_one_jump_wake_in_time_order() -> None:
    clock = ManualClock(start=0.0)
    woken: list[float] = []

    async def sleeper(when: float) -> None:
        await clock.sleep_until(when)
        woken.append(when)

    async def main() -> None:
        times = [7.0, 3.0, 9.0, 1.0, 5.0]
        tasks = [asyncio.create_task(sleeper(when)) for when in times]
        await settle()
        clock.set(100.0)
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        assert woken == sorted(times)

    asyncio.run(main())


def test_sleepers_due_at_the_same_time_wake_in_arrival_order() -> None:
    clock = ManualClock(start=0.0)
    woken: list[int] = []

    async def sleeper(number: int) -> None:
        await clock.sleep_until(5.0)
        woken.append(number)

    async def main() -> None:
        tasks = []
        for number in range(5):
            tasks.append(asyncio.create_task(sleeper(number)))
            await settle()
        clock.advance(5)
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        assert woken == [0, 1, 2, 3, 4]

    asyncio.run(main())


@pytest.mark.parametrize("offset", [0.0, -10.0])
def test_a_sleeper_whose_time_has_come_returns_at_once(offset: float) -> None:
    clock = ManualClock(start=1000.0)

    async def main() -> None:
        task = asyncio.create_task(clock.sleep_until(clock.now() + offset))
        await asyncio.sleep(0)  # one step of the task, and no clock movement
        assert task.done()
        assert task.exception() is None
        assert clock.pending() == 0

    asyncio.run(main())
    assert clock.now() == 1000.0


def test_pending_counts_waiting_sleepers() -> None:
    clock = ManualClock(start=0.0)

    async def main() -> None:
        assert clock.pending() == 0
        tasks = [asyncio.create_task(clock.sleep_until(when)) for when in (1.0, 2.0, 3.0)]
        await settle()
        assert clock.pending() == 3
        clock.advance(2)
        await settle()
        assert clock.pending() == 1
        clock.advance(1)
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        assert clock.pending() == 0

    asyncio.run(main())


def test_reset_cancels_sleepers_and_goes_back_to_the_start() -> None:
    clock = ManualClock(start=500.0)

    async def main() -> None:
        clock.advance(50)
        tasks = [asyncio.create_task(clock.sleep_until(when)) for when in (600.0, 700.0)]
        await settle()
        assert clock.pending() == 2
        clock.reset()
        assert clock.now() == 500.0
        assert clock.pending() == 0
        await settle()
        assert all(task.cancelled() for task in tasks)

    asyncio.run(main())
    # After a reset the clock works as new.
    clock.advance(1)
    assert clock.now() == 501.0


def test_a_cancelled_sleeper_is_no_longer_pending() -> None:
    clock = ManualClock(start=0.0)

    async def main() -> None:
        task = asyncio.create_task(clock.sleep_until(10.0))
        await settle()
        assert clock.pending() == 1
        task.cancel()
        await settle()
        assert task.cancelled()

    asyncio.run(main())
    assert clock.pending() == 0


def test_advance_and_reset_still_work_after_a_cancelled_sleepers_loop_has_closed() -> None:
    # A task sleeping on the clock is cancelled (a timeout, a server shutting down) and its event
    # loop closes; the clock must not try to wake it on that closed loop later.
    clock = ManualClock(start=0.0)

    async def main() -> None:
        task = asyncio.create_task(clock.sleep_until(10.0))
        await settle()
        task.cancel()
        await settle()
        assert task.cancelled()

    asyncio.run(main())
    clock.advance(20)
    assert clock.now() == 20.0
    clock.reset()
    assert clock.now() == 0.0


def test_advance_from_another_thread_wakes_a_sleeper_on_a_loop_in_a_thread() -> None:
    clock = ManualClock(start=0.0)
    sleeping = threading.Event()
    results: queue.Queue[object] = queue.Queue()

    async def sleeper() -> None:
        task = asyncio.create_task(clock.sleep_until(30.0))
        await settle()
        sleeping.set()
        await asyncio.wait_for(task, TIMEOUT)
        results.put(clock.now())

    def loop_thread() -> None:
        try:
            asyncio.run(sleeper())
        except BaseException as exc:  # handed to the test thread, which fails on it
            results.put(exc)

    thread = threading.Thread(target=loop_thread, daemon=True)
    thread.start()
    assert sleeping.wait(TIMEOUT), "the sleeper never started"
    assert clock.pending() == 1

    clock.advance(29)  # not yet: the sleeper stays asleep
    assert clock.pending() == 1
    assert results.empty()

    clock.advance(1)  # from this thread, not the loop's
    assert results.get(timeout=TIMEOUT) == 30.0
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert clock.pending() == 0


def test_advance_from_a_third_thread_wakes_sleepers_on_two_loops() -> None:
    clock = ManualClock(start=0.0)
    ready: queue.Queue[str] = queue.Queue()
    results: queue.Queue[str] = queue.Queue()

    def loop_thread(name: str, when: float) -> None:
        async def sleeper() -> None:
            task = asyncio.create_task(clock.sleep_until(when))
            await settle()
            ready.put(name)
            await asyncio.wait_for(task, TIMEOUT)
            results.put(name)

        asyncio.run(sleeper())

    threads = [
        threading.Thread(target=loop_thread, args=(name, when), daemon=True)
        for name, when in (("early", 10.0), ("late", 20.0))
    ]
    for thread in threads:
        thread.start()
    assert {ready.get(timeout=TIMEOUT), ready.get(timeout=TIMEOUT)} == {"early", "late"}

    advancer = threading.Thread(target=clock.advance, args=(15.0,))
    advancer.start()
    advancer.join(TIMEOUT)
    assert results.get(timeout=TIMEOUT) == "early"
    assert clock.pending() == 1
    assert results.empty()

    clock.advance(5)
    assert results.get(timeout=TIMEOUT) == "late"
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


# --- RealClock --------------------------------------------------------------------------


def test_real_clock_starts_near_the_given_start() -> None:
    clock = RealClock(start=1_000_000.0)
    assert 1_000_000.0 <= clock.now() < 1_000_000.0 + 1.0
    assert clock.start == 1_000_000.0


def test_real_clock_without_start_follows_the_wall_clock() -> None:
    before = time.time()
    clock = RealClock()
    after = time.time()
    assert before <= clock.start <= after
    assert before <= clock.now() < after + 1.0


def test_real_clock_speed_zero_freezes_time() -> None:
    clock = RealClock(start=1000.0, speed=0)
    first = clock.now()
    second = clock.now()
    assert first == second == 1000.0


def test_real_clock_set_speed_keeps_the_time_already_passed() -> None:
    clock = RealClock(start=1000.0, speed=1000)

    async def main() -> None:
        await asyncio.wait_for(clock.sleep_until(1005.0), TIMEOUT)

    asyncio.run(main())
    clock.set_speed(0)
    frozen = clock.now()
    assert frozen >= 1005.0
    assert clock.now() == frozen
    assert clock.speed == 0
    clock.set_speed(0)  # changing speed again loses nothing either
    assert clock.now() == frozen
    clock.set_speed(1)
    assert clock.now() >= frozen


def test_real_clock_fast_speed_makes_sleeps_short() -> None:
    clock = RealClock(start=1000.0, speed=1000)

    async def main() -> float:
        target = clock.now() + 5
        # A bound, not a timing assertion: at speed 1 this would take 5 s.
        await asyncio.wait_for(clock.sleep_until(target), 2.0)
        return target

    target = asyncio.run(main())
    assert clock.now() >= target


def test_real_clock_sleep_until_the_past_returns_at_once() -> None:
    clock = RealClock(start=1000.0, speed=0)

    async def main() -> None:
        task = asyncio.create_task(clock.sleep_until(999.0))
        await asyncio.sleep(0)
        assert task.done()

    asyncio.run(main())


def test_real_clock_frozen_sleeper_wakes_once_the_speed_is_raised() -> None:
    clock = RealClock(start=1000.0, speed=0)

    async def main() -> None:
        task = asyncio.create_task(clock.sleep_until(1001.0))
        await settle()
        assert not task.done()
        assert clock.now() == 1000.0
        clock.set_speed(1000)
        await asyncio.wait_for(task, 2.0)
        assert clock.now() >= 1001.0

    asyncio.run(main())


def test_real_clock_rejects_a_negative_speed() -> None:
    with pytest.raises(ValueError, match="speed"):
        RealClock(speed=-1)
    clock = RealClock(start=1000.0, speed=0)
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(-0.5)
    assert clock.speed == 0
    assert clock.now() == 1000.0


def test_real_clock_reset_goes_back_to_start_and_initial_speed() -> None:
    clock = RealClock(start=1000.0, speed=0)
    clock.set_speed(1000)

    async def main() -> None:
        await asyncio.wait_for(clock.sleep_until(1005.0), TIMEOUT)

    asyncio.run(main())
    assert clock.now() >= 1005.0
    clock.reset()
    assert clock.speed == 0
    assert clock.now() == 1000.0
