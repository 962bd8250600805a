"""The harness against the fake: it passes, says what it skipped and why, and stays in budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import contract.runner
from contract import Report, Status, check
from mock_server.catalog import Profile, Timing
from mock_server.server import free_port

from .conftest import KEYS, HideControl, Variant, run_against


def test_the_fake_passes_every_check(fake_report: tuple[Report, Path]) -> None:
    report, _ = fake_report
    assert report.failed() == []
    assert report.ok and report.exit_code == 0
    groups = {r.group for r in report.results}
    assert {"lifecycle", "outputs", "errors", "idempotency", "listing", "isolation"} <= groups
    assert {"callbacks", "schema"} <= groups
    assert report.status_of("callbacks.retry") is Status.PASS
    assert report.status_of("isolation.other_key_404") is Status.PASS
    assert report.status_of("callbacks.signature") is Status.PASS


def test_every_schema_phase_ran(fake_report: tuple[Report, Path]) -> None:
    (run,) = fake_report[0].named("schema.run")
    for phase in ("examples", "coverage", "fuzzing", "stateful"):
        assert f"{phase} success" in run.message


def test_documented_behaviour_is_listed_as_expected_deviations(
    fake_report: tuple[Report, Path],
) -> None:
    report, _ = fake_report
    fallback = [d for d in report.deviations if d.rule == "page-size-fallback"]
    assert fallback and fallback[0].subject == "GET /v1/tasks"
    assert fallback[0].curl and "/v1/tasks?" in fallback[0].curl
    assert report.status_of("schema.negative_data_rejection") is Status.DEVIATION


def test_the_in_process_fake_shows_the_409(fake_report: tuple[Report, Path]) -> None:
    (result,) = fake_report[0].named("idempotency.in_flight_409")
    assert result.status is Status.PASS, result.message


def test_a_409_the_target_answers_too_fast_for_is_skipped_not_passed(
    serve: Callable[..., Variant],
) -> None:
    report = run_against(serve(profile="instant"), "behaviour")
    (result,) = report.named("idempotency.in_flight_409")
    assert result.status is Status.SKIP
    assert "not observed" in result.message


def test_what_it_spent_is_counted(fake_report: tuple[Report, Path]) -> None:
    spend = fake_report[0].spend
    assert spend.requests > spend.schema_requests > 0
    assert spend.tasks_created >= 4  # lifecycle, jpeg, fail, retry, and the fuzzer's


def test_an_unknown_target_with_one_key_skips_what_it_cannot_check(
    serve: Callable[..., Variant],
) -> None:
    variant = serve(HideControl)
    report = run_against(variant, "behaviour", "callbacks", keys=KEYS[:1], retry_wait=0.2)
    assert report.failed() == []
    skipped = {r.label: r.message for r in report.results if r.status is Status.SKIP}
    assert skipped["isolation.other_key_404"] == "needs a second key (give --api-key twice)"
    assert "not observed within the time budget" in skipped["callbacks.retry"]
    assert "on demand" in skipped["callbacks.delivered [fail]"]
    assert report.counts()[Status.PASS] == len(report.results) - len(skipped)


def test_live_mode_keeps_to_its_budget_and_never_fuzzes_creates(
    serve: Callable[..., Variant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real pace (50 a minute) would take minutes here; the budget logic is the same.
    monkeypatch.setattr(contract.runner, "LIVE_REQUESTS_PER_MINUTE", 6000)
    variant = serve()
    report = check(variant.url, list(KEYS), live=True, max_tasks=1, examples=2)
    assert report.live and report.failed() == []
    creates = variant.backend.journal.entries(path="/v1/tasks", method="POST")
    made = [e for e in creates if e.status == 200 and e.task_id not in (None, "")]
    assert len({e.task_id for e in made}) == report.spend.tasks_created == 1
    assert "POST /v1/tasks" not in {
        r.subject for r in report.named("schema.status_code_conformance")
    }
    assert any("needs a task beyond --max-tasks 1" in r.message for r in report.results)
    assert report.status_of("schema.run") is Status.PASS


def test_an_unreachable_target_fails_once_and_stops() -> None:
    report = check(f"http://127.0.0.1:{free_port()}", "sk-contract-nobody")
    assert [r.name for r in report.results] == ["target.reachable"]
    (result,) = report.failed()
    assert "ConnectError" in result.message and result.curl
    assert report.exit_code == 1


def test_fuzzed_callbacks_reach_only_the_harness(serve: Callable[..., Variant]) -> None:
    variant = serve()
    report = run_against(variant, "schema")
    assert report.failed() == []
    urls = {attempt.url for attempt in variant.backend.callbacks.log}
    assert urls, "the fuzzer created no task with a callback"
    assert all(url.startswith("http://127.0.0.1:") for url in urls), urls


def test_a_create_slow_enough_to_overlap_shows_the_409(serve: Callable[..., Variant]) -> None:
    # Every create takes 0.2 s, so a second create with the same key finds the first in flight.
    variant = serve(profile=Profile("slow-create", accept=0.2, fixed=Timing(0.02, 0.1, 0.02)))
    report = run_against(variant, "behaviour")
    assert report.failed() == []
    (result,) = report.named("idempotency.in_flight_409")
    assert result.status is Status.PASS, result.message
