"""Three clients graded in every scenario: the reference client passes, a naive one fails the
grades meant for each of its habits (naming the evidence), and a shell client using curl is
graded the same way as the Python ones, because the grader sees only HTTP."""

from __future__ import annotations

import pytest

from mock_server.grading import SCENARIOS, GradeReport, GradeResult, Verdict, render_table

from .conftest import require_curl

pytestmark = pytest.mark.server

#: Grades that depend on the client running a callback receiver (the curl client runs none).
RECEIVER_GRADES = {"receiver_ack", "callback_dedup"}


def graded(report: GradeReport, scenario: str, grade: str) -> GradeResult:
    result = report[scenario].get(grade)
    assert result is not None, f"{scenario}/{grade} was not graded\n{render_table(report)}"
    return result


# -- the reference client ------------------------------------------------------------------------


def test_the_reference_client_passes_every_grade_of_every_scenario(
    reference_report: GradeReport,
) -> None:
    table = render_table(reference_report)
    assert [r.scenario.name for r in reference_report.results] == [s.name for s in SCENARIOS]
    assert reference_report.ok and reference_report.exit_code == 0, table
    assert reference_report.counts()[Verdict.PASS] > 0
    assert not reference_report.findings(), table


@pytest.mark.parametrize(
    ("scenario", "grade", "reason"),
    [
        ("rate_limited_create", "retry_after", "waited at least Retry-After"),
        ("unavailable_polling", "retry_after", "after all 2 such answer(s)"),
        ("dropped_create", "no_duplicate_create", "with the same Idempotency-Key"),
        ("invalid_input", "no_invalid_resubmit", "did not resend the payload refused with 400"),
        ("task_failed", "outcome", "the task failed with TASK_FAILED"),
        ("callback_duplicated", "receiver_ack", "answered 2xx to all 3 deliveries"),
        ("callback_duplicated", "callback_dedup", "handled once: 1 download(s)"),
        ("callback_dropped", "reconciles_by_polling", "by polling"),
        ("callback_delayed", "reconciles_by_polling", "without the callback"),
        ("expired_output", "expired_output", "stopped at the 404 after fetching the task again"),
        ("slow_task", "poll_cadence", "fake clock x20"),
    ],
)
def test_the_reference_client_is_graded_on_what_each_scenario_stages(
    reference_report: GradeReport, scenario: str, grade: str, reason: str
) -> None:
    result = graded(reference_report, scenario, grade)
    assert result.verdict is Verdict.PASS
    assert reason in result.reason


# -- the naive client ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("habit", "scenario", "grade", "reason", "evidence"),
    [
        ("polls every 10 ms", "happy_path", "poll_cadence", "polled too fast", "GET /v1/tasks/"),
        ("polls every 10 ms", "slow_task", "poll_cadence", "polled too fast", "GET /v1/tasks/"),
        ("no backoff", "rate_limited_create", "retry_after", "asking Retry-After: 1", "-> 429"),
        ("no backoff", "unavailable_polling", "retry_after", "asking Retry-After: 1", "-> 503"),
        (
            "blind POST retry",
            "dropped_create",
            "no_duplicate_create",
            "without an Idempotency-Key",
            "no answer (connection dropped) [no Idempotency-Key]",
        ),
        (
            "blind POST retry",
            "invalid_input",
            "no_invalid_resubmit",
            "sent the payload refused at #1 POST /v1/tasks",
            "the refused body again",
        ),
        (
            "no deduplication",
            "callback_duplicated",
            "callback_dedup",
            "downloads of its output after 3 deliveries",
            "callback delivery (attempt 1, copy 3): answered 200",
        ),
        (
            "blind download retry",
            "expired_output",
            "expired_output",
            "more times after #",
            "GET /files/",
        ),
    ],
)
def test_the_naive_client_fails_the_grade_meant_for_each_habit(
    naive_report: GradeReport, habit: str, scenario: str, grade: str, reason: str, evidence: str
) -> None:
    result = graded(naive_report, scenario, grade)
    assert result.verdict is Verdict.FAIL, f"{habit}: {result}"
    assert reason in result.reason, result.reason
    shown = [str(e) for e in result.evidence]
    assert any(evidence in line for line in shown), shown
    assert all(line.startswith("+") for line in shown)  # each carries its time
    assert result.rule and result.advice


def test_the_naive_clients_failures_make_the_run_fail(naive_report: GradeReport) -> None:
    assert not naive_report.ok and naive_report.exit_code == 1
    table = render_table(naive_report)
    assert "FAIL  rate_limited_create / retry_after: too soon: #2 POST /v1/tasks" in table
    # What it does right is still credited: it answers every delivery and sends its key.
    assert graded(naive_report, "callback_duplicated", "receiver_ack").verdict is Verdict.PASS
    assert all(graded(naive_report, s.name, "auth").verdict is Verdict.PASS for s in SCENARIOS)


# -- the curl client -----------------------------------------------------------------------------


def test_curl_is_installed() -> None:
    require_curl()


def test_a_shell_client_is_graded_like_the_python_ones(
    curl_report: GradeReport, reference_report: GradeReport
) -> None:
    table = render_table(curl_report)
    assert curl_report.ok, table
    for theirs, ours in zip(curl_report.results, reference_report.results, strict=True):
        # Every grade the reference client was given, the shell client was given too (a
        # callback that wakes the reference client early leaves it no poll cadence to time).
        expected = {g.grade for g in ours.grades} - RECEIVER_GRADES
        assert expected <= {g.grade for g in theirs.grades}, theirs.scenario.name
    assert (
        "with the same Idempotency-Key"
        in graded(curl_report, "dropped_create", "no_duplicate_create").reason
    )
    assert graded(curl_report, "rate_limited_create", "retry_after").verdict is Verdict.PASS
    assert graded(curl_report, "expired_output", "outcome").reason.startswith("exited 3")


def test_a_client_without_a_receiver_is_warned_not_passed(curl_report: GradeReport) -> None:
    for name in ("callback_duplicated", "callback_delayed", "callback_dropped"):
        result = graded(curl_report, name, "receiver_ack")
        assert result.verdict is Verdict.WARN
        assert result.reason.startswith("not exercised")
        assert graded(curl_report, name, "outcome").verdict is Verdict.PASS
