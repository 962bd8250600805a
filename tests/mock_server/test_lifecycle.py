"""Tests for mock_server.lifecycle: the status table read from openapi.yaml, and timelines."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import yaml

from mock_server.catalog import Timing
from mock_server.errors import IllegalTransition, MockError
from mock_server.lifecycle import (
    FAIL,
    MOVES,
    QUEUED,
    STATUSES,
    SUCCESS,
    TERMINAL,
    Timeline,
    check_moves,
    plan,
)
from mock_server.spec import spec_path

#: The documented machine: queued → handling → archiving → success | fail, failing early allowed.
DOCUMENTED_MOVES = {
    (None, "queued"),
    ("queued", "handling"),
    ("queued", "fail"),
    ("handling", "archiving"),
    ("handling", "fail"),
    ("archiving", "success"),
    ("archiving", "fail"),
}
CREATED = 100.0
TIMING = Timing(queued=1.0, handling=10.0, archiving=2.0)


def line() -> Timeline:
    """A task created at 100: handling at 101, archiving at 111, success at 113."""
    return plan(CREATED, TIMING, error=None)


# --- the table --------------------------------------------------------------------------


def test_statuses_are_the_documented_ones_in_order() -> None:
    assert STATUSES == ("queued", "handling", "archiving", "success", "fail")
    assert QUEUED == "queued"
    assert SUCCESS == "success"
    assert FAIL == "fail"
    assert frozenset({"success", "fail"}) == TERMINAL


def test_moves_are_the_documented_machine() -> None:
    assert set(MOVES) == DOCUMENTED_MOVES


def test_moves_are_read_from_openapi_yaml() -> None:
    with spec_path().open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    status = document["components"]["schemas"]["TaskStatus"]
    from_spec = {(a, b) for a, b in status["x-transitions"]["moves"]}
    assert set(MOVES) == from_spec | {(None, status["enum"][0])}
    assert tuple(status["enum"]) == STATUSES


def test_terminal_statuses_have_no_way_out() -> None:
    assert not [move for move in MOVES if move[0] in TERMINAL]


def test_illegal_transition_is_a_mock_error() -> None:
    assert issubclass(IllegalTransition, MockError)


@pytest.mark.parametrize(
    "statuses",
    [
        ["queued"],
        ["queued", "handling"],
        ["queued", "handling", "archiving"],
        ["queued", "handling", "archiving", "success"],
        ["queued", "handling", "archiving", "fail"],
        ["queued", "handling", "fail"],
        ["queued", "fail"],
        [],
    ],
)
def test_check_moves_accepts_legal_sequences(statuses: list[str]) -> None:
    check_moves(statuses)
    check_moves(iter(statuses))  # any iterable


@pytest.mark.parametrize(
    ("statuses", "bad"),
    [
        (["queued", "success"], "from queued to success"),  # skipping
        (["queued", "archiving"], "from queued to archiving"),  # skipping
        (["queued", "handling", "success"], "from handling to success"),  # skipping
        (["queued", "handling", "queued"], "from handling to queued"),  # backwards
        (["queued", "handling", "archiving", "handling"], "from archiving to handling"),
        (["queued", "handling", "archiving", "success", "fail"], "from success to fail"),
        (["queued", "fail", "handling"], "from fail to handling"),
        (["queued", "queued"], "from queued to queued"),  # standing still is no move
        (["handling"], "from nothing to handling"),  # starting elsewhere
        (["success"], "from nothing to success"),
        (["queued", "running"], "from queued to running"),  # not a status at all
    ],
)
def test_check_moves_rejects_illegal_sequences(statuses: list[str], bad: str) -> None:
    with pytest.raises(IllegalTransition, match=bad):
        check_moves(statuses)


# --- Timeline ---------------------------------------------------------------------------


def test_timeline_accepts_a_legal_terminal_history() -> None:
    timeline = Timeline(("queued", "handling", "fail"), (1.0, 2.0, 2.0))
    assert timeline.created == 1.0
    assert timeline.finished == 2.0
    assert timeline.outcome == "fail"


@pytest.mark.parametrize(
    "statuses",
    [("queued",), ("queued", "handling"), ("queued", "handling", "archiving")],
)
def test_timeline_rejects_a_non_terminal_ending(statuses: tuple[str, ...]) -> None:
    with pytest.raises(IllegalTransition, match="success or fail"):
        Timeline(statuses, tuple(float(i) for i in range(len(statuses))))


def test_timeline_rejects_times_going_backwards() -> None:
    with pytest.raises(IllegalTransition, match="back in time"):
        Timeline(("queued", "handling", "archiving", "success"), (10.0, 12.0, 11.0, 13.0))


def test_timeline_rejects_an_illegal_history() -> None:
    with pytest.raises(IllegalTransition):
        Timeline(("queued", "success"), (10.0, 11.0))
    with pytest.raises(IllegalTransition):
        Timeline(("handling", "archiving", "success"), (10.0, 11.0, 12.0))


# --- plan -------------------------------------------------------------------------------


def test_plan_success_enters_each_status_at_the_right_time() -> None:
    timeline = line()
    assert timeline.statuses == ("queued", "handling", "archiving", "success")
    assert timeline.times == (100.0, 101.0, 111.0, 113.0)
    assert timeline.created == 100.0
    assert timeline.finished == 113.0
    assert timeline.outcome == "success"


def test_plan_with_an_error_fails_straight_from_handling() -> None:
    timeline = plan(CREATED, TIMING, error=object())
    assert timeline.statuses == ("queued", "handling", "fail")
    assert timeline.times == (100.0, 101.0, 111.0)
    assert timeline.outcome == "fail"
    assert timeline.finished == 111.0


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (100.0, "queued"),
        (100.999, "queued"),
        (101.0, "handling"),  # entering at t means status_at(t) is the new status
        (110.999, "handling"),
        (111.0, "archiving"),
        (112.999, "archiving"),
        (113.0, "success"),
        (10_000.0, "success"),
    ],
)
def test_status_at_boundaries(now: float, status: str) -> None:
    assert line().status_at(now) == status


@pytest.mark.parametrize(("now", "status"), [(110.999, "handling"), (111.0, "fail")])
def test_status_at_boundaries_of_a_failing_plan(now: float, status: str) -> None:
    assert plan(CREATED, TIMING, error="refused").status_at(now) == status


@pytest.mark.parametrize(("error", "outcome"), [(None, "success"), ("refused", "fail")])
def test_instant_timing_is_terminal_at_creation(error: str | None, outcome: str) -> None:
    timeline = plan(CREATED, Timing(), error=error)
    assert timeline.status_at(CREATED) == outcome
    assert timeline.finished == timeline.created == CREATED
    assert set(timeline.times) == {CREATED}


# --- finish -----------------------------------------------------------------------------

#: (now, status at now, statuses the forced timeline goes through, for each outcome)
FINISH_CASES: Sequence[tuple[float, str, str, tuple[str, ...]]] = [
    (100.0, "queued", "success", ("queued", "handling", "archiving", "success")),
    (100.5, "queued", "success", ("queued", "handling", "archiving", "success")),
    (100.5, "queued", "fail", ("queued", "fail")),
    (101.0, "handling", "success", ("queued", "handling", "archiving", "success")),
    (105.0, "handling", "success", ("queued", "handling", "archiving", "success")),
    (105.0, "handling", "fail", ("queued", "handling", "fail")),
    (111.0, "archiving", "fail", ("queued", "handling", "archiving", "fail")),
    (112.0, "archiving", "success", ("queued", "handling", "archiving", "success")),
    (112.0, "archiving", "fail", ("queued", "handling", "archiving", "fail")),
]


@pytest.mark.parametrize(("now", "current", "outcome", "statuses"), FINISH_CASES)
def test_finish_forces_the_outcome_from_every_non_terminal_status(
    now: float, current: str, outcome: str, statuses: tuple[str, ...]
) -> None:
    original = line()
    assert original.status_at(now) == current
    forced = original.finish(now, outcome)

    assert forced.statuses == statuses
    check_moves(forced.statuses)
    assert forced.outcome == outcome
    assert forced.finished == now
    assert forced.status_at(now) == outcome
    # The past is kept: everything entered up to now stays where it was...
    kept = original.statuses.index(current) + 1
    assert forced.times[:kept] == original.times[:kept]
    # ...and the rest of the path is walked at the same instant.
    assert forced.times[kept:] == (now,) * (len(statuses) - kept)
    for t in (100.0, 100.25, 101.0, 104.0, 111.0, 112.5):
        if t < now:
            assert forced.status_at(t) == original.status_at(t)
    # The original is untouched (timelines are values).
    assert original == line()


def test_finish_from_queued_to_success_passes_through_handling_and_archiving() -> None:
    forced = line().finish(100.5, "success")
    assert forced.statuses == ("queued", "handling", "archiving", "success")
    assert forced.times == (100.0, 100.5, 100.5, 100.5)


def test_finish_a_failing_plan_with_success_before_it_failed() -> None:
    doomed = plan(CREATED, TIMING, error="refused")
    saved = doomed.finish(105.0, "success")
    assert saved.statuses == ("queued", "handling", "archiving", "success")
    assert saved.times == (100.0, 101.0, 105.0, 105.0)


@pytest.mark.parametrize("now", [113.0, 113.5, 10_000.0])
@pytest.mark.parametrize("outcome", ["success", "fail"])
def test_finish_never_changes_an_already_finished_timeline(now: float, outcome: str) -> None:
    done = line()
    assert done.finish(now, outcome) == done
    failed = plan(CREATED, TIMING, error="refused")
    assert failed.finish(now, outcome) == failed


def test_finish_of_an_instant_timeline_is_a_no_op() -> None:
    instant = plan(CREATED, Timing(), error=None)
    assert instant.finish(CREATED, "fail") == instant


def test_finish_with_a_non_terminal_outcome_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        line().finish(100.5, "archiving")
