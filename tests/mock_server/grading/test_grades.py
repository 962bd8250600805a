"""Each grade's thresholds, on observations built by hand (no fake, no client)."""

from __future__ import annotations

import pytest

from mock_server.catalog import Timing
from mock_server.grading import GRADES, Observation, Verdict
from mock_server.grading.grades import GradeResult
from mock_server.grading.request_checks import request_problems

from .support import (
    BODY,
    TASK,
    body_with,
    create,
    delivery,
    entry,
    observation,
    polls,
)

BY_NAME = {g.name: g for g in GRADES}


def grade(name: str, obs: Observation) -> GradeResult | None:
    return BY_NAME[name].grade(obs)


def verdict(name: str, obs: Observation) -> Verdict:
    result = grade(name, obs)
    assert result is not None, f"{name} gave nothing"
    return result.verdict


def test_every_grade_has_a_unique_name_column_rule_and_advice() -> None:
    assert len({g.name for g in GRADES}) == len({g.column for g in GRADES}) == len(GRADES)
    assert all(g.rule and g.advice and g.title for g in GRADES)
    assert all(any(s in g.rule for s in ("docs", "sdk", "example")) for g in GRADES)


# -- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("gap", "expected"), [(0.5, Verdict.FAIL), (1.0, Verdict.PASS)])
def test_retry_after_compares_the_gap_with_the_header(gap: float, expected: Verdict) -> None:
    obs = observation(create(1, 0.0, 429), create(2, gap), retry_after={429: 1.0})
    result = grade("retry_after", obs)
    assert result is not None and result.verdict is expected
    if expected is Verdict.FAIL:
        assert "#2 POST /v1/tasks at +0.500s came 0.500 s after a 429 asking Retry-After: 1" in (
            result.reason
        )
        assert [e.text.split(" [")[0] for e in result.evidence] == [
            "#1 POST /v1/tasks -> 429 (Retry-After: 1)",
            "#2 POST /v1/tasks -> 200",
        ]


def test_retry_after_is_measured_in_the_clients_seconds_on_a_fast_clock() -> None:
    # 10 s of a x20 clock is half a second of the client's: too soon for Retry-After: 1.
    obs = observation(create(1, 0.0, 429), create(2, 10.0), retry_after={429: 1.0}, speed=20)
    assert verdict("retry_after", obs) is Verdict.FAIL


def test_retry_after_is_not_graded_without_a_429_or_503() -> None:
    assert grade("retry_after", observation(create(1, 0.0), *polls(2, [0.1, 1.1]))) is None


# -- polling -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "expected", "reason"),
    [
        ([0.0, 0.05, 0.1, 0.15, 0.7], Verdict.FAIL, "polled too fast"),
        ([0.0, 0.4, 0.8], Verdict.WARN, "polled fast"),
        ([0.0, 1.0, 2.5], Verdict.PASS, "3 polls until the end was seen, 1.250 s apart"),
    ],
)
def test_poll_cadence_thresholds(times: list[float], expected: Verdict, reason: str) -> None:
    obs = observation(create(1, 0.0), *polls(2, times), timing=Timing(0.5, 1.5, 0.5))
    result = grade("poll_cadence", obs)
    assert result is not None and result.verdict is expected
    assert reason in result.reason


def test_more_than_sixty_polls_in_a_minute_fail_whatever_the_mean() -> None:
    times = [i * 0.25 for i in range(70)]  # 0.25 s apart: above the mean's fail threshold
    obs = observation(create(1, 0.0), *polls(2, times), timing=Timing(1.0, 98.0, 1.0))
    result = grade("poll_cadence", obs)
    assert result is not None and result.verdict is Verdict.FAIL
    assert "70 within one minute" in result.reason


def test_cadence_counts_only_the_polls_until_the_end_was_seen() -> None:
    # The task ends at 0.7 s: the poll at 1 s sees it; what follows is `stops_at_terminal`'s.
    obs = observation(create(1, 0.0), *polls(2, [0.0, 1.0, 1.01, 1.02]))
    result = grade("poll_cadence", obs)
    assert result is not None and result.verdict is Verdict.PASS


def test_a_poll_prompted_by_a_callback_is_not_part_of_the_cadence() -> None:
    obs = observation(
        create(1, 0.0), *polls(2, [0.0, 0.75]), scenario="callback_duplicated",
        deliveries=[delivery(0.7)],
    )  # fmt: skip
    assert grade("poll_cadence", obs) is None


@pytest.mark.parametrize(("extra", "expected"), [(1, Verdict.PASS), (2, Verdict.FAIL)])
def test_polls_after_the_terminal_state(extra: int, expected: Verdict) -> None:
    times = [0.0, 1.0] + [1.0 + i for i in range(1, extra + 1)]
    result = grade("stops_at_terminal", observation(create(1, 0.0), *polls(2, times)))
    assert result is not None and result.verdict is expected
    if expected is Verdict.FAIL:
        expected_reason = f"2 more polls after #3 GET /v1/tasks/{TASK} at +1.000s showed success"
        assert result.reason == expected_reason


# -- creates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_key", "retry_key", "expected", "reason"),
    [
        ("k-1", "k-1", Verdict.PASS, "with the same Idempotency-Key"),
        (None, None, Verdict.FAIL, "without an Idempotency-Key"),
        ("k-1", "k-2", Verdict.FAIL, "with another Idempotency-Key"),
    ],
)
def test_a_create_whose_answer_was_lost(
    first_key: str | None, retry_key: str | None, expected: Verdict, reason: str
) -> None:
    obs = observation(create(1, 0.0, 0, key=first_key), create(2, 0.5, key=retry_key))
    result = grade("no_duplicate_create", obs)
    assert result is not None and result.verdict is expected
    assert reason in result.reason


def test_two_tasks_for_one_job_fail() -> None:
    second = create(2, 1.0)
    second = second.__class__(**{**second.to_json(), "task_id": TASK[:-1] + "B"})
    result = grade("no_duplicate_create", observation(create(1, 0.0), second))
    assert result is not None and result.verdict is Verdict.FAIL
    assert result.reason.startswith("created 2 tasks for one job")


def test_a_retry_after_a_429_is_not_a_duplicate() -> None:
    obs = observation(create(1, 0.0, 429), create(2, 1.0), retry_after={429: 1.0})
    assert verdict("no_duplicate_create", obs) is Verdict.PASS


@pytest.mark.parametrize(("again", "expected"), [(BODY, Verdict.FAIL), ("{}", Verdict.PASS)])
def test_a_refused_payload_sent_again(again: str, expected: Verdict) -> None:
    obs = observation(create(1, 0.0, 400), create(2, 0.1, 400, body=again))
    assert verdict("no_invalid_resubmit", obs) is expected
    assert grade("no_invalid_resubmit", observation(create(1, 0.0))) is None


# -- shape and auth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (create(1, 0, body=body_with(extra=1)), "unknown field 'extra'"),
        (create(1, 0, body=body_with(model="nope")), "model: must be one of"),
        (create(1, 0, body="model=x"), "body: is not JSON"),
        (entry(1, 0, "POST", "/v1/tasks", body=BODY, headers={"content-type": "text/plain"}),
         "Content-Type is text/plain"),
        (entry(1, 0, "GET", "/v1/tasks/not-an-id"), "taskId: must match the pattern"),
        (entry(1, 0, "GET", "/v1/task/x"), "is not an operation of openapi.yaml"),
        (create(1, 0, key="k" * 256), "Idempotency-Key: must be at most 255 characters"),
    ],
)  # fmt: skip
def test_requests_are_checked_against_openapi_yaml(request_: object, problem: str) -> None:
    assert isinstance(request_, type(entry(1, 0)))
    problems = request_problems(request_)
    assert any(problem in p for p in problems), problems
    result = grade("spec_valid", observation(request_))
    assert result is not None and result.verdict is Verdict.FAIL


def test_valid_requests_pass_and_downloads_are_not_checked() -> None:
    obs = observation(create(1, 0, key="k"), entry(2, 0.1), entry(3, 0.2, path="/files/x/0.png"))
    result = grade("spec_valid", obs)
    assert result is not None and result.verdict is Verdict.PASS
    assert result.reason == "all 2 request(s) conform to openapi.yaml"


@pytest.mark.parametrize(
    ("key", "reason"), [(None, "no Authorization header"), ("sk-someone-else", "sent key")]
)
def test_every_api_request_carries_the_key_given(key: str | None, reason: str) -> None:
    result = grade("auth", observation(create(1, 0), entry(2, 0.1, key=key)))
    assert result is not None and result.verdict is Verdict.FAIL
    assert reason in result.reason


# -- the end, callbacks, outputs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "exit_code", "outputs", "expected", "reason"),
    [
        ("happy_path", 0, [("a.png", 5)], Verdict.PASS, "exited 0 with a.png (5 bytes) saved"),
        ("happy_path", 0, [], Verdict.FAIL, "saved nothing"),
        ("happy_path", 1, [], Verdict.FAIL, "exited 1 although the task could succeed"),
        ("happy_path", None, [], Verdict.FAIL, "did not finish within 20 s and was killed"),
        ("invalid_input", 0, [], Verdict.FAIL, "exited 0 although its create was refused"),
    ],
)
def test_outcome(
    scenario: str, exit_code: int | None, outputs: list[tuple[str, int]], expected: Verdict,
    reason: str,
) -> None:  # fmt: skip
    obs = observation(
        create(1, 0, 400 if scenario == "invalid_input" else 200),
        scenario=scenario, exit_code=exit_code, outputs=outputs,
    )  # fmt: skip
    result = grade("outcome", obs)
    assert result is not None and result.verdict is expected
    assert reason in result.reason


def test_giving_up_on_a_lost_create_without_a_key_is_a_warning() -> None:
    obs = observation(create(1, 0, 0), scenario="dropped_create", exit_code=2, outputs=[])
    assert verdict("outcome", obs) is Verdict.WARN


def test_receiver_grades_apply_only_to_callback_scenarios() -> None:
    assert grade("receiver_ack", observation(create(1, 0))) is None
    obs = observation(create(1, 0), scenario="callback_duplicated")
    result = grade("receiver_ack", obs)
    assert result is not None and result.verdict is Verdict.WARN
    assert result.reason.startswith("not exercised")


def test_an_unanswered_delivery_fails_the_receiver() -> None:
    with_callback = body_with(callback={"url": "http://127.0.0.1:2/hiapi/callback"})
    obs = observation(
        create(1, 0, body=with_callback), scenario="callback_duplicated",
        deliveries=[delivery(0.7), delivery(0.7, 500, copy=2), delivery(0.7, None, copy=3)],
    )  # fmt: skip
    result = grade("receiver_ack", obs)
    assert result is not None and result.verdict is Verdict.FAIL
    assert result.reason == (
        "2 of 3 deliveries not acknowledged; first: copy 2 at +0.700s answered 500"
    )


def test_a_delivery_cut_short_by_the_clients_exit_is_not_held_against_it() -> None:
    with_callback = body_with(callback={"url": "http://127.0.0.1:2/hiapi/callback"})
    obs = observation(
        create(1, 0, body=with_callback), scenario="callback_duplicated",
        deliveries=[delivery(0.7), delivery(0.95, None, copy=2)], ended=1.0,
    )  # fmt: skip
    assert verdict("receiver_ack", obs) is Verdict.PASS


@pytest.mark.parametrize(
    ("poll_times", "delivered_at", "expected"),
    [
        ([0.0, 1.0], None, Verdict.PASS),
        ([0.0], None, Verdict.FAIL),
        ([0.0, 11.0], 10.7, Verdict.WARN),
    ],
)
def test_reconciliation_by_polling(
    poll_times: list[float], delivered_at: float | None, expected: Verdict
) -> None:
    deliveries = [] if delivered_at is None else [delivery(delivered_at)]
    obs = observation(
        create(1, 0), *polls(2, poll_times), scenario="callback_delayed", deliveries=deliveries
    )
    assert verdict("reconciles_by_polling", obs) is expected


@pytest.mark.parametrize(
    ("after", "expected", "reason"),
    [
        ([], Verdict.PASS, "stopped at the 404"),
        ([(3, 0.2, "GET", f"/v1/tasks/{TASK}"), (4, 0.3, "GET", f"/files/{TASK}/0.png")],
         Verdict.PASS, "stopped at the 404 after fetching the task again"),
        ([(3, 0.3, "GET", f"/files/{TASK}/0.png")], Verdict.WARN, "without fetching the task"),
        ([(n, 0.1 * n, "GET", f"/files/{TASK}/0.png") for n in range(3, 8)], Verdict.FAIL,
         "requested the expired link 5 more times"),
    ],
)  # fmt: skip
def test_an_expired_output(
    after: list[tuple[int, float, str, str]], expected: Verdict, reason: str
) -> None:
    gone = entry(2, 0.1, "GET", f"/files/{TASK}/0.png", 404)
    later = [entry(s, at, m, p, 404 if p.startswith("/files/") else 200) for s, at, m, p in after]
    obs = observation(create(1, 0), gone, *later, scenario="expired_output", exit_code=3)
    result = grade("expired_output", obs)
    assert result is not None and result.verdict is expected
    assert reason in result.reason


def test_a_long_list_of_evidence_is_cut_and_counted() -> None:
    obs = observation(create(1, 0), *polls(2, [i * 0.01 for i in range(30)]))
    result = grade("poll_cadence", obs)
    assert result is not None
    assert len(result.evidence) == 9
    assert result.evidence[-1].text == "... and 22 more"
