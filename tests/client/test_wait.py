"""`wait()` and `run()`: polling with backoff, terminal states, deadlines."""

from __future__ import annotations

import pytest

from client import RateLimitError, TaskFailedError, TaskStatus, WaitTimeoutError

from .conftest import MakeApi
from .support import (
    MODEL,
    PROMPT,
    TASK_ID,
    FakeClock,
    Script,
    created,
    error,
    ok,
    task_data,
    task_reply,
)


def test_polls_until_success(make_api: MakeApi, clock: FakeClock) -> None:
    statuses = ["queued", "handling", "archiving", "success"]
    script = Script(*(task_reply(status) for status in statuses))
    task = make_api(script).wait(TASK_ID)
    assert task.status == TaskStatus.SUCCESS
    assert task.output[0].url == "https://cdn.test/out/0.png"
    assert clock.sleeps == [1.0, 1.5, 2.25]
    assert {request.url.path for request in script.requests} == {f"/v1/tasks/{TASK_ID}"}


def test_a_task_already_done_is_returned_without_sleeping(
    make_api: MakeApi, clock: FakeClock
) -> None:
    script = Script(task_reply("success"))
    assert make_api(script).wait(TASK_ID).succeeded
    assert (script.count, clock.sleeps) == (1, [])


def test_fail_raises_task_failed_with_the_task_and_its_error(make_api: MakeApi) -> None:
    script = Script(task_reply("handling"), task_reply("fail"))
    with pytest.raises(TaskFailedError, match="TASK_FAILED: upstream rejected") as caught:
        make_api(script).wait(TASK_ID)
    err = caught.value
    assert err.task is not None and err.task.status == "fail"
    assert (err.error_code, err.error_message) == ("TASK_FAILED", "upstream rejected the prompt")


def test_fail_without_an_error_object_still_raises(make_api: MakeApi) -> None:
    data = {"taskId": TASK_ID, "model": MODEL, "status": "fail"}
    with pytest.raises(TaskFailedError) as caught:
        make_api(Script(ok(data))).wait(TASK_ID)
    assert caught.value.error_code is None


def test_the_deadline_raises_wait_timeout_and_is_never_overslept(
    make_api: MakeApi, clock: FakeClock
) -> None:
    start = clock.now
    script = Script(*(task_reply("handling") for _ in range(6)))
    with pytest.raises(WaitTimeoutError) as caught:
        make_api(script).wait(TASK_ID, timeout=10)
    assert clock.sleeps == [1.0, 1.5, 2.25, 3.375, 1.875]
    assert clock.now - start == pytest.approx(10.0)
    assert script.count == 6  # the last poll happens at the deadline itself
    err = caught.value
    assert (err.task_id, err.timeout) == (TASK_ID, 10)
    assert err.task is not None and err.task.status == "handling"


def test_a_zero_timeout_polls_once(make_api: MakeApi, clock: FakeClock) -> None:
    script = Script(task_reply("queued"))
    with pytest.raises(WaitTimeoutError):
        make_api(script).wait(TASK_ID, timeout=0)
    assert (script.count, clock.sleeps) == (1, [])


def test_backoff_grows_by_half_and_stops_at_the_cap(make_api: MakeApi, clock: FakeClock) -> None:
    script = Script(*(task_reply("handling") for _ in range(12)), task_reply("success"))
    make_api(script).wait(TASK_ID, timeout=None)
    expected = [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375] + [10.0] * 6
    assert clock.sleeps == pytest.approx(expected)


def test_custom_poll_interval_and_cap(make_api: MakeApi, clock: FakeClock) -> None:
    script = Script(*(task_reply("queued") for _ in range(3)), task_reply("success"))
    make_api(script).wait(TASK_ID, poll_interval=2, max_poll_interval=3)
    assert clock.sleeps == [2.0, 3.0, 3.0]


def test_an_unknown_status_keeps_polling(make_api: MakeApi) -> None:
    script = Script(task_reply("paused"), task_reply("moderating"), task_reply("success"))
    assert make_api(script).wait(TASK_ID).succeeded
    assert script.count == 3


def test_a_retry_after_on_a_poll_is_honoured(make_api: MakeApi, clock: FakeClock) -> None:
    hinted = ok(task_data("handling"), headers={"Retry-After": "5"})
    make_api(Script(hinted, task_reply("success"))).wait(TASK_ID)
    assert clock.sleeps == [5.0]


def test_a_retry_after_past_the_deadline_ends_the_wait_at_once(
    make_api: MakeApi, clock: FakeClock
) -> None:
    hinted = ok(task_data("handling"), headers={"Retry-After": "30"})
    with pytest.raises(WaitTimeoutError):
        make_api(Script(hinted)).wait(TASK_ID, timeout=20)
    assert clock.sleeps == []


def test_a_rate_limited_poll_is_retried_inside_the_wait(
    make_api: MakeApi, clock: FakeClock
) -> None:
    script = Script(
        task_reply("queued"),
        error(429, headers={"Retry-After": "4"}),
        task_reply("success"),
    )
    assert make_api(script).wait(TASK_ID).succeeded
    assert clock.sleeps == [1.0, 4.0]


def test_a_retry_that_would_cross_the_deadline_raises_the_error(
    make_api: MakeApi, clock: FakeClock
) -> None:
    script = Script(error(429, headers={"Retry-After": "5"}))
    with pytest.raises(RateLimitError):
        make_api(script).wait(TASK_ID, timeout=3)
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "options",
    [{"timeout": -1}, {"poll_interval": 0}, {"poll_interval": 5, "max_poll_interval": 1}],
)
def test_wait_refuses_nonsense_arguments(make_api: MakeApi, options: dict[str, float]) -> None:
    script = Script()
    with pytest.raises(ValueError):
        make_api(script).wait(TASK_ID, **options)
    assert script.count == 0


def test_run_creates_then_waits(make_api: MakeApi, clock: FakeClock) -> None:
    script = Script(created(), task_reply("queued"), task_reply("success"))
    task = make_api(script).run(
        MODEL, PROMPT, callback="https://me.test/hook", idempotency_key="r1", poll_interval=2
    )
    assert task.succeeded
    assert [request.method for request in script.requests] == ["POST", "GET", "GET"]
    assert script.requests[0].headers["idempotency-key"] == "r1"
    assert b'"callback":{"url":"https://me.test/hook"}' in script.requests[0].content
    assert clock.sleeps == [2.0]


def test_run_raises_when_the_task_fails(make_api: MakeApi) -> None:
    with pytest.raises(TaskFailedError):
        make_api(Script(created(), task_reply("fail"))).run(MODEL, PROMPT)
