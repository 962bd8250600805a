"""Which failures are retried, how long the client waits, and when it gives up."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    IdempotencyMismatchError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)

from .conftest import MakeApi
from .support import (
    API_KEY,
    MODEL,
    PROMPT,
    TASK_ID,
    FakeClock,
    Script,
    created,
    error,
    make_sync,
    task_reply,
)

DATE = "Wed, 21 Oct 2026 07:28:00 GMT"


def test_429_waits_the_retry_after_seconds(make_api: MakeApi, clock: FakeClock) -> None:
    script = Script(error(429, headers={"Retry-After": "7"}), task_reply())
    assert make_api(script).retrieve(TASK_ID).task_id == TASK_ID
    assert clock.sleeps == [7.0]
    assert script.count == 2


def test_429_retry_after_as_an_http_date_is_measured_from_the_date_header(
    make_api: MakeApi, clock: FakeClock
) -> None:
    headers = {"Date": DATE, "Retry-After": "Wed, 21 Oct 2026 07:28:12 GMT"}
    make_api(Script(error(429, headers=headers), task_reply())).retrieve(TASK_ID)
    assert clock.sleeps == [12.0]


def test_retry_after_as_an_http_date_without_a_date_header(
    make_api: MakeApi, clock: FakeClock
) -> None:
    headers = {"Retry-After": formatdate(time.time() + 30, usegmt=True)}
    make_api(Script(error(429, headers=headers), task_reply())).retrieve(TASK_ID)
    [slept] = clock.sleeps
    assert 28.0 <= slept <= 30.0


def test_a_retry_after_in_the_past_is_clamped_to_zero(make_api: MakeApi, clock: FakeClock) -> None:
    headers = {"Date": DATE, "Retry-After": "Wed, 21 Oct 2026 07:27:00 GMT"}
    make_api(Script(error(503, headers=headers), task_reply())).retrieve(TASK_ID)
    assert clock.sleeps == [0.0]


def test_a_retry_after_of_exactly_the_cap_is_waited(make_api: MakeApi, clock: FakeClock) -> None:
    make_api(Script(error(429, headers={"Retry-After": "60"}), task_reply())).retrieve(TASK_ID)
    assert clock.sleeps == [60.0]


def test_a_retry_after_beyond_the_cap_is_raised_not_shortened(
    make_api: MakeApi, clock: FakeClock
) -> None:
    script = Script(error(429, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimitError) as caught:
        make_api(script).retrieve(TASK_ID)
    assert caught.value.retry_after == 120.0
    assert clock.sleeps == []
    assert script.count == 1


@pytest.mark.parametrize("value", ["soon", "-5", "", "1e3", "12abc", "٣"])
def test_an_unreadable_retry_after_falls_back_to_backoff(
    make_api: MakeApi, clock: FakeClock, value: str
) -> None:
    body = {"code": 429, "message": "slow down", "data": None}
    reply = httpx.Response(429, json=body, headers=[(b"Retry-After", value.encode())])
    make_api(Script(reply, task_reply())).retrieve(TASK_ID)
    [slept] = clock.sleeps
    assert 0.25 <= slept <= 0.5


def test_503_then_200_backs_off_once(make_api: MakeApi, clock: FakeClock) -> None:
    script = Script(error(503, "MODEL_UNAVAILABLE"), created())
    assert make_api(script, auto_idempotency_key=False).create(MODEL, PROMPT) == TASK_ID
    [slept] = clock.sleeps
    assert 0.25 <= slept <= 0.5
    assert script.count == 2


def test_409_processing_waits_then_replays_with_the_same_key(
    make_api: MakeApi, clock: FakeClock
) -> None:
    busy = error(409, "IDEMPOTENCY_KEY_PROCESSING", headers={"Retry-After": "5"})
    script = Script(busy, created())
    assert make_api(script).create(MODEL, PROMPT, idempotency_key="order-7") == TASK_ID
    assert clock.sleeps == [5.0]
    assert script.header("idempotency-key") == ["order-7", "order-7"]
    assert script.requests[0].content == script.requests[1].content


def test_server_errors_back_off_exponentially_with_a_cap(
    make_api: MakeApi, clock: FakeClock
) -> None:
    script = Script(*(error(500) for _ in range(7)))
    with pytest.raises(InternalServerError):
        make_api(script, max_retries=6).retrieve(TASK_ID)
    assert script.count == 7
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(clock.sleeps) == len(ceilings)
    for slept, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling


@pytest.mark.parametrize("status", [500, 502, 504])
def test_500_502_504_are_retried_for_a_get(make_api: MakeApi, status: int) -> None:
    script = Script(error(status), task_reply())
    make_api(script).retrieve(TASK_ID)
    assert script.count == 2


def test_501_is_not_retried(make_api: MakeApi) -> None:
    script = Script(error(501))
    with pytest.raises(InternalServerError):
        make_api(script).retrieve(TASK_ID)
    assert script.count == 1


def test_a_500_on_create_is_retried_only_with_an_idempotency_key(make_api: MakeApi) -> None:
    without = Script(error(500))
    with pytest.raises(InternalServerError):
        make_api(without, auto_idempotency_key=False).create(MODEL, PROMPT)
    assert without.count == 1
    keyed = Script(error(500), created())
    make_api(keyed, auto_idempotency_key=False).create(MODEL, PROMPT, idempotency_key="k1")
    assert keyed.header("idempotency-key") == ["k1", "k1"]


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_other_4xx_are_never_retried(make_api: MakeApi, clock: FakeClock, status: int) -> None:
    get, post = Script(error(status)), Script(error(status))
    api = make_api(get)
    with pytest.raises(APIStatusError):
        api.retrieve(TASK_ID)
    with pytest.raises(APIStatusError):
        make_api(post).create(MODEL, PROMPT, idempotency_key="k")
    assert (get.count, post.count, clock.sleeps) == (1, 1, [])


@pytest.mark.parametrize("raised", [httpx.ConnectError, httpx.ReadTimeout, httpx.ReadError])
def test_a_network_error_on_a_get_is_retried(
    make_api: MakeApi, raised: type[httpx.TransportError]
) -> None:
    script = Script(raised("down"), task_reply())
    assert make_api(script).retrieve(TASK_ID).task_id == TASK_ID
    assert script.count == 2


@pytest.mark.parametrize(
    ("raised", "cls"),
    [(httpx.ConnectError, APIConnectionError), (httpx.ReadTimeout, APITimeoutError)],
)
def test_a_network_error_on_a_post_without_a_key_is_not_retried(
    make_api: MakeApi, raised: type[httpx.TransportError], cls: type[APIConnectionError]
) -> None:
    script = Script(raised("down"))
    with pytest.raises(cls):
        make_api(script, auto_idempotency_key=False).create(MODEL, PROMPT)
    assert script.count == 1


def test_a_network_error_on_a_post_with_a_key_is_retried_with_the_same_key(
    make_api: MakeApi,
) -> None:
    script = Script(httpx.ConnectError("down"), created())
    api = make_api(script, auto_idempotency_key=False)
    assert api.create(MODEL, PROMPT, idempotency_key="order-9") == TASK_ID
    assert script.header("idempotency-key") == ["order-9", "order-9"]


def test_auto_idempotency_key_makes_create_retryable_and_keeps_the_key(
    make_api: MakeApi,
) -> None:
    script = Script(httpx.ConnectError("down"), httpx.ReadTimeout("slow"), error(502), created())
    assert make_api(script, auto_idempotency_key=True).create(MODEL, PROMPT) == TASK_ID
    keys = script.header("idempotency-key")
    assert len(keys) == 4 and len(set(keys)) == 1 and keys[0]


@pytest.mark.parametrize("max_retries", [0, 1, 2, 5])
def test_max_retries_bounds_the_attempts_and_the_last_error_is_raised(
    make_api: MakeApi, clock: FakeClock, max_retries: int
) -> None:
    attempts = max_retries + 1
    replies = [error(503, message=f"attempt {n}") for n in range(1, attempts + 1)]
    script = Script(*replies)
    with pytest.raises(ServiceUnavailableError, match=f"attempt {attempts}$"):
        make_api(script, max_retries=max_retries).retrieve(TASK_ID)
    assert script.count == attempts
    assert len(clock.sleeps) == max_retries


def test_mismatch_is_not_retried_even_with_a_key(make_api: MakeApi) -> None:
    script = Script(error(422, "IDEMPOTENCY_KEY_MISMATCH"))
    with pytest.raises(IdempotencyMismatchError):
        make_api(script).create(MODEL, PROMPT, idempotency_key="k")
    assert script.count == 1


def test_jitter_comes_from_the_injected_random() -> None:
    def sleeps(seed: int) -> list[float]:
        import random

        clock = FakeClock()
        script = Script(*(error(500) for _ in range(4)))
        api = make_sync(script, clock, rng=random.Random(seed), max_retries=3)
        with pytest.raises(InternalServerError):
            api.retrieve(TASK_ID)
        api.close()
        return clock.sleeps

    assert sleeps(1) == sleeps(1)
    assert sleeps(1) != sleeps(2)


@pytest.mark.parametrize("seconds", [0, 1, 5, 30, 59])
def test_never_sleeps_less_than_retry_after(
    make_api: MakeApi, clock: FakeClock, seconds: int
) -> None:
    replies = [error(429, headers={"Retry-After": str(seconds)}) for _ in range(3)]
    make_api(Script(*replies, task_reply())).retrieve(TASK_ID)
    assert clock.sleeps == [float(seconds)] * 3


def test_retries_are_logged_without_the_key(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="hiapi.client")
    make_api(Script(error(503, "MODEL_UNAVAILABLE"), task_reply())).retrieve(TASK_ID)
    assert "retrying GET https://api.test/v1/tasks/" in caplog.text
    assert "MODEL_UNAVAILABLE" in caplog.text
    assert API_KEY not in caplog.text
