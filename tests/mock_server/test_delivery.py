"""The types of callback delivery without sending: fault bounds, rule matching, the policy's
attempts, what counts as delivered."""

from __future__ import annotations

from typing import Any

import pytest

from mock_server.delivery import (
    MAX_COPIES,
    MIN_WINDOW,
    Attempt,
    CallbackFault,
    DeliveryPolicy,
    Fault,
    FaultRule,
)


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ({"copies": 0}, "action.copies"),
        ({"copies": MAX_COPIES + 1}, "action.copies"),
        ({"copies": True}, "action.copies"),
        ({"delay": -1}, "action.delay"),
        ({"stale_by": float("-inf")}, "action.stale_by"),
        ({"window": MIN_WINDOW / 2}, "action.window"),
    ],
)
def test_a_fault_out_of_bounds_is_refused_naming_the_field(
    numbers: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CallbackFault(Fault.DUPLICATE, **numbers)


def test_a_fault_at_its_bounds_is_accepted() -> None:
    fault = CallbackFault(Fault.REORDER, copies=MAX_COPIES, window=MIN_WINDOW, delay=0)
    assert (fault.copies, fault.window) == (MAX_COPIES, MIN_WINDOW)


def test_a_fault_rule_matches_on_every_text_it_names() -> None:
    both = FaultRule(CallbackFault(Fault.DROP), url_contains="/hooks", prompt_contains="banana")
    assert both.matches("https://a.test/hooks/1", "a banana")
    assert not both.matches("https://a.test/other", "a banana")
    assert not both.matches("https://a.test/hooks/1", "an apple")
    assert FaultRule(CallbackFault(Fault.DROP)).matches("anything", "at all")


def test_the_policy_counts_the_first_attempt_and_each_retry() -> None:
    assert DeliveryPolicy().attempts == 4
    assert DeliveryPolicy(retry_delays=()).attempts == 1


@pytest.mark.parametrize(("status", "ok"), [(200, True), (299, True), (300, False), (None, False)])
def test_only_a_2xx_answer_counts_as_delivered(status: int | None, ok: bool) -> None:
    attempt = Attempt("tk-1", "https://a.test", 1, 1, 0.0, 0.0, {}, status, None, 0.0, None)
    assert attempt.ok is ok
