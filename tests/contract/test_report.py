"""Reports: the terminal summary, JUnit XML that CI tools parse, and JSON that round-trips."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from contract import CheckResult, Deviation, Finding, Report, Spend, Status
from contract.report import junit_xml, render, result_line, write_reports

CURL = 'curl -X GET -H "Authorization: Bearer $HIAPI_API_KEY" http://127.0.0.1:1/v1/tasks'


def _sample() -> Report:
    return Report(
        target="http://127.0.0.1:1",
        results=[
            CheckResult("lifecycle.status_order", Status.PASS, "queued → success", "lifecycle"),
            CheckResult(
                "outputs.pixel_size",
                Status.FAIL,
                "output 0 is 1025x1024, expected 1024x1024",
                "lifecycle",
                [Finding("output 0 is 1025x1024, expected 1024x1024", CURL)],
                0.25,
                "docs",
            ),
            CheckResult("schema.ignored_auth", Status.FAIL, "auth ignored", "GET /v1/tasks"),
            CheckResult("isolation.other_key_404", Status.SKIP, "needs a second key"),
            CheckResult("schema.negative_data_rejection", Status.DEVIATION, "3", "GET /v1/tasks"),
        ],
        deviations=[
            Deviation(
                "page-size-fallback",
                "schema.negative_data_rejection",
                "GET /v1/tasks",
                "docs: falls back",
                3,
                CURL,
            ),
        ],
        spend=Spend(requests=10, schema_requests=6, tasks_created=2, rate_limited=1),
        notes=["target: somewhere"],
        seed=7,
        started_at=1_767_225_600.0,
        duration=1.5,
    )


def test_junit_counts_failures_and_skips_per_suite_and_in_total() -> None:
    root = ET.fromstring(junit_xml(_sample()))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "2", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["schema"].get("failures") == "1" and suites["schema"].get("tests") == "2"
    assert suites["isolation"].get("skipped") == "1"
    failures = root.findall(".//testcase/failure")
    assert len(failures) == 2
    assert CURL in (failures[0].text or "")
    deviation = root.find(".//testcase[@name='schema.negative_data_rejection [GET /v1/tasks]']")
    assert deviation is not None and deviation.find("failure") is None
    assert "page-size-fallback" in (deviation.findtext("system-out") or "")


def test_json_round_trips() -> None:
    report = _sample()
    again = Report.from_json(report.to_json())
    assert again == report
    data = json.loads(report.to_json())
    assert data["ok"] is False
    assert data["counts"] == {"pass": 1, "fail": 2, "skip": 1, "deviation": 1}


def test_the_summary_shows_failures_with_curl_deviations_skips_and_spend() -> None:
    text = render(_sample())
    assert "FAIL  outputs.pixel_size [lifecycle]" in text
    assert CURL in text
    assert "page-size-fallback" in text and "docs: falls back" in text
    assert "SKIP  isolation.other_key_404: needs a second key" in text
    assert "Spent: 10 requests (6 by Schemathesis), 2 task(s) created" in text
    assert text.splitlines()[-1].startswith("FAILED: 1 passed, 2 failed, 1 skipped, 1 expected")


def test_one_progress_line_per_check() -> None:
    line = result_line(CheckResult("a.b", Status.DEVIATION, "first\nsecond", "GET /x"))
    assert line == "DEV   a.b [GET /x]  first"


def test_a_real_run_writes_parseable_files(fake_report: tuple[Report, Path]) -> None:
    report, directory = fake_report
    root = ET.parse(directory / "report.xml").getroot()
    assert root.get("failures") == "0"
    assert root.get("tests") == str(len(report.results))
    assert root.get("skipped") == str(report.counts()[Status.SKIP])
    loaded = Report.from_json((directory / "report.json").read_text(encoding="utf-8"))
    assert loaded == report


def test_write_reports_creates_the_directory(tmp_path: Path) -> None:
    xml_path, json_path = write_reports(_sample(), tmp_path / "nested" / "dir")
    assert xml_path.name == "report.xml" and json_path.name == "report.json"
    assert Report.from_json(json_path.read_text(encoding="utf-8")).spend.rate_limited == 1
