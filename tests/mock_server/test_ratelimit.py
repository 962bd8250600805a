"""Tests for mock_server.ratelimit: 60 requests a minute and 10 at once, per key."""

from __future__ import annotations

import pytest

from mock_server import ratelimit
from mock_server.clock import ManualClock
from mock_server.errors import RateLimited
from mock_server.ratelimit import RateLimiter

#: A whole minute (1767225600 = 29453760 * 60), so the clock starts at a window's beginning.
START = 1_767_225_600.0
WINDOW_END = 1_767_225_660
KEY = "sk-test-alice"


def limiter(enforce: bool = True) -> tuple[RateLimiter, ManualClock]:
    clock = ManualClock(start=START)
    return RateLimiter(clock, enforce=enforce), clock


def as_dict(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return dict(headers)


def remaining(headers: list[tuple[bytes, bytes]]) -> int:
    return int(as_dict(headers)[b"x-ratelimit-remaining"])


def admit_and_release(rate: RateLimiter, key: str = KEY) -> list[tuple[bytes, bytes]]:
    """One request that is admitted and answered."""
    headers, refusal = rate.admit(key)
    assert refusal is None, refusal.message if refusal else None
    rate.release(key)
    return headers


def test_headers_are_lowercase_bytes_with_limit_remaining_and_reset() -> None:
    rate, _ = limiter()
    headers, refusal = rate.admit(KEY)
    assert refusal is None
    assert [name for name, _ in headers] == [
        b"x-ratelimit-limit",
        b"x-ratelimit-remaining",
        b"x-ratelimit-reset",
    ]
    assert as_dict(headers) == {
        b"x-ratelimit-limit": b"60",
        b"x-ratelimit-remaining": b"59",
        b"x-ratelimit-reset": str(WINDOW_END).encode(),
    }


def test_remaining_counts_down_from_59() -> None:
    rate, clock = limiter()
    seen = []
    for _ in range(60):
        seen.append(remaining(admit_and_release(rate)))
        clock.advance(0.5)
    assert seen == list(range(59, -1, -1))


def test_the_61st_request_in_a_minute_is_refused_with_the_seconds_left() -> None:
    rate, clock = limiter()
    for _ in range(60):
        admit_and_release(rate)
    clock.advance(15.5)  # 44.5 s left in the window
    headers, refusal = rate.admit(KEY)
    assert isinstance(refusal, RateLimited)
    assert refusal.status == 429
    assert refusal.error_code == "RATE_LIMITED"
    assert refusal.retry_after == 45
    assert "60" in refusal.message
    assert remaining(headers) == 0
    assert as_dict(headers)[b"x-ratelimit-reset"] == str(WINDOW_END).encode()


@pytest.mark.parametrize(
    ("elapsed", "retry_after"),
    [(0.0, 60), (1.0, 59), (58.5, 2), (59.0, 1), (59.7, 1), (59.999, 1)],
)
def test_retry_after_is_the_ceiling_of_the_seconds_left_and_at_least_one(
    elapsed: float, retry_after: int
) -> None:
    rate, clock = limiter()
    for _ in range(60):
        admit_and_release(rate)
    clock.advance(elapsed)
    _, refusal = rate.admit(KEY)
    assert refusal is not None
    assert refusal.retry_after == retry_after


def test_a_refused_request_is_not_counted() -> None:
    rate, clock = limiter()
    for _ in range(60):
        admit_and_release(rate)
    for _ in range(5):
        headers, refusal = rate.admit(KEY)
        assert refusal is not None
        assert remaining(headers) == 0
    # Refusals needed no release and left nothing in flight: the next window admits 10 at once.
    clock.advance(60)
    for expected in range(59, 49, -1):
        headers, refusal = rate.admit(KEY)
        assert refusal is None
        assert remaining(headers) == expected


def test_the_next_window_resets_the_count() -> None:
    rate, clock = limiter()
    for _ in range(60):
        admit_and_release(rate)
    clock.advance(59.999)
    assert rate.admit(KEY)[1] is not None
    clock.advance(0.001)  # exactly the next minute
    headers = admit_and_release(rate)
    assert remaining(headers) == 59
    assert as_dict(headers)[b"x-ratelimit-reset"] == str(WINDOW_END + 60).encode()


def test_reset_header_is_the_end_of_the_current_window() -> None:
    rate, clock = limiter()
    clock.advance(125.25)  # in the third window
    headers = admit_and_release(rate)
    assert as_dict(headers)[b"x-ratelimit-reset"] == str(WINDOW_END + 120).encode()
    assert remaining(headers) == 59


def test_ten_at_once_then_the_eleventh_is_refused_for_a_second() -> None:
    rate, _ = limiter()
    for expected in range(59, 49, -1):
        headers, refusal = rate.admit(KEY)
        assert refusal is None
        assert remaining(headers) == expected
    headers, refusal = rate.admit(KEY)
    assert isinstance(refusal, RateLimited)
    assert refusal.retry_after == 1
    assert "10" in refusal.message
    assert remaining(headers) == 50  # not counted

    rate.release(KEY)
    headers, refusal = rate.admit(KEY)
    assert refusal is None
    assert remaining(headers) == 49
    assert rate.admit(KEY)[1] is not None  # full again


def test_requests_in_flight_carry_over_into_the_next_window() -> None:
    rate, clock = limiter()
    for _ in range(10):
        assert rate.admit(KEY)[1] is None
    clock.advance(60)
    _, refusal = rate.admit(KEY)
    assert refusal is not None
    assert refusal.retry_after == 1
    rate.release(KEY)
    assert rate.admit(KEY)[1] is None


def test_release_without_admit_does_no_harm() -> None:
    rate, _ = limiter()
    rate.release(KEY)
    rate.release("sk-never-seen")
    for _ in range(10):
        assert rate.admit(KEY)[1] is None
    assert rate.admit(KEY)[1] is not None  # a stray release did not make room for an 11th


def test_without_enforcement_nothing_is_refused_but_everything_is_counted() -> None:
    rate, _ = limiter(enforce=False)
    seen = []
    for _ in range(75):  # over both limits, never released
        headers, refusal = rate.admit(KEY)
        assert refusal is None
        seen.append(remaining(headers))
    assert seen[:60] == list(range(59, -1, -1))
    assert seen[60:] == [0] * 15  # clamped at 0


def test_keys_are_independent() -> None:
    rate, _ = limiter()
    for _ in range(60):
        admit_and_release(rate, "sk-test-alice")
    assert rate.admit("sk-test-alice")[1] is not None
    headers = admit_and_release(rate, "sk-test-bob")
    assert remaining(headers) == 59
    for _ in range(10):
        assert rate.admit("ip:127.0.0.1")[1] is None
    assert rate.admit("ip:127.0.0.1")[1] is not None
    assert rate.admit("sk-test-bob")[1] is None


def test_custom_limits() -> None:
    clock = ManualClock(start=START)
    rate = RateLimiter(clock, per_minute=3, concurrent=2)
    assert rate.admit(KEY)[1] is None
    assert rate.admit(KEY)[1] is None
    _, refusal = rate.admit(KEY)
    assert refusal is not None and refusal.retry_after == 1
    rate.release(KEY)
    headers, refusal = rate.admit(KEY)
    assert refusal is None
    assert as_dict(headers)[b"x-ratelimit-limit"] == b"3"
    assert remaining(headers) == 0
    rate.release(KEY)
    _, refusal = rate.admit(KEY)
    assert refusal is not None and refusal.retry_after == 60


def test_reset_forgets_every_count() -> None:
    rate, _ = limiter()
    for _ in range(60):
        admit_and_release(rate)
    for _ in range(10):
        assert rate.admit("sk-test-bob")[1] is None
    rate.reset()
    assert remaining(admit_and_release(rate)) == 59
    assert rate.admit("sk-test-bob")[1] is None  # nothing in flight any more


def test_buckets_of_past_windows_are_dropped_so_the_table_stays_bounded() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock)
    for i in range(ratelimit._PRUNE_AT + 1):
        limiter.admit(f"sk-key-{i}")
        limiter.release(f"sk-key-{i}")
    held = "sk-still-in-flight"
    limiter.admit(held)
    clock.advance(60)
    limiter.admit("sk-next-window")
    assert len(limiter._buckets) == 2  # the one in flight and the new one
    assert held in limiter._buckets
