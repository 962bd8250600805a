"""The reports: a terminal table, Markdown, JSON and JUnit XML of the same findings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mock_server.grading import (
    GRADES,
    GradeReport,
    ScenarioResult,
    Verdict,
    junit_xml,
    markdown,
    render_table,
    to_json,
    write_reports,
)
from mock_server.grading.grades import grade_all

from .support import create, observation, polls


def _result(scenario: str, *args: object, **kwargs: object) -> ScenarioResult:
    obs = observation(*args, scenario=scenario, **kwargs)  # type: ignore[arg-type]
    return ScenarioResult(obs.scenario, obs.execution, tuple(grade_all(obs)), 3, 0)


@pytest.fixture
def report() -> GradeReport:
    good = _result("happy_path", create(1, 0.0), *polls(2, [0.0, 1.0]))
    bad = _result(
        "rate_limited_create", create(1, 0.0, 429), create(2, 0.01), *polls(3, [0.02, 1.02]),
        retry_after={429: 1.0},
    )  # fmt: skip
    return GradeReport("./my-client --fast", (good, bad), 2.5)


def test_the_table_has_a_row_per_scenario_and_a_column_per_grade(report: GradeReport) -> None:
    table = render_table(report)
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    assert header.split() == ["scenario", "exit", "time", *(g.column for g in GRADES)]
    row = next(line for line in lines if line.startswith("rate_limited_create")).split()
    assert row[:3] == ["rate_limited_create", "0", "1.0s"]
    assert row[3 + [g.name for g in GRADES].index("retry_after")] == "FAIL"
    assert row[3 + [g.name for g in GRADES].index("expired_output")] == "-"
    assert "FAIL  rate_limited_create / retry_after: too soon: #2 POST /v1/tasks" in table
    assert "      rule: 429 and 503 carry Retry-After" in table
    assert "        +0.000s  #1 POST /v1/tasks -> 429 (Retry-After: 1)" in table
    assert lines[-1].startswith("FAILED: 1 fail, 0 warn, ")
    assert report.exit_code == 1


def test_markdown(report: GradeReport) -> None:
    text = markdown(report)
    assert text.startswith("# hiapi-mock grade: `./my-client --fast`")
    assert "| rate_limited_create | 0 | 1.0s | pass | pass | pass | **FAIL** |" in text
    assert "### FAIL `rate_limited_create` / `retry_after`" in text
    assert "- Recommended: After a 429 or 503, wait at least Retry-After" in text
    assert "```\n+0.000s  #1 POST /v1/tasks -> 429" in text


def test_json(report: GradeReport) -> None:
    data = json.loads(json.dumps(to_json(report)))
    assert data["ok"] is False
    assert data["counts"]["fail"] == 1
    failing = data["scenarios"][1]
    assert failing["verdict"] == "fail"
    retry = next(g for g in failing["grades"] if g["grade"] == "retry_after")
    assert retry["evidence"][1] == {
        "at": 0.01,
        "text": "#2 POST /v1/tasks -> 200 [no Idempotency-Key]: "
        "0.010 s after a 429 asking Retry-After: 1",
    }


def test_junit(report: GradeReport) -> None:
    root = ET.fromstring(junit_xml(report))
    assert root.tag == "testsuites" and root.get("failures") == "1"
    suites = {s.get("name"): s for s in root}
    assert set(suites) == {"happy_path", "rate_limited_create"}
    case = suites["rate_limited_create"].find("testcase[@name='retry_after']")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None and (failure.get("message") or "").startswith("too soon")
    assert "rule: 429 and 503 carry Retry-After" in (failure.text or "")
    passing = suites["happy_path"].find("testcase[@name='auth']")
    assert passing is not None and passing.find("failure") is None


def test_write_reports(report: GradeReport, tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path / "out")
    assert [p.name for p in paths] == ["report.md", "report.json", "report.xml"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_a_clean_run_says_passed() -> None:
    clean = GradeReport("c", (_result("happy_path", create(1, 0.0), *polls(2, [0.0, 1.0])),), 1)
    assert clean.ok and render_table(clean).splitlines()[-1].startswith("PASSED: 0 fail")
    assert clean["happy_path"].verdict is Verdict.PASS
    with pytest.raises(KeyError):
        clean["nope"]
