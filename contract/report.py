"""A `Report` for people and for CI: a terminal summary, JUnit XML and JSON.

>>> from contract.results import CheckResult, Report, Status
>>> print(result_line(CheckResult("errors.non_json_415", Status.PASS, "415 for a form body")))
PASS  errors.non_json_415  415 for a form body
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from .results import CheckResult, Report, Status

__all__ = ["JSON_NAME", "JUNIT_NAME", "junit_xml", "render", "result_line", "write_reports"]

JUNIT_NAME = "report.xml"
JSON_NAME = "report.json"
_TAGS = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.SKIP: "SKIP", Status.DEVIATION: "DEV "}
_INDENT = " " * 6


def result_line(result: CheckResult) -> str:
    """One line per finished check, as the run prints it."""
    line = f"{_TAGS[result.status]}  {result.label}"
    return f"{line}  {result.message.splitlines()[0]}" if result.message else line


def render(report: Report) -> str:
    """The terminal summary: every check, then failures with curl, deviations, skips, spend."""
    lines = [f"hiapi-contract: {report.target} (seed {report.seed})", ""]
    lines += [result_line(r) for r in report.results]
    failed = report.failed()
    if failed:
        lines += ["", f"Failures ({len(failed)}):"]
        for result in failed:
            lines.append(f"  FAIL  {result.label}")
            for finding in result.findings or []:
                lines.append(textwrap.indent(finding.message, _INDENT))
                if finding.curl:
                    lines.append(textwrap.indent(finding.curl, _INDENT + "  "))
    if report.deviations:
        lines += ["", "Expected deviations (documented behaviour a generic check misreads):"]
        for dev in report.deviations:
            lines.append(f"  DEV   {dev.check} [{dev.subject}] x{dev.count}  {dev.rule}")
            lines.append(textwrap.indent(dev.reason, _INDENT))
            if dev.curl:
                lines.append(textwrap.indent(dev.curl, _INDENT + "  "))
    skipped = [r for r in report.results if r.status is Status.SKIP]
    if skipped:
        lines += ["", f"Skipped ({len(skipped)}, shown, never counted as passed):"]
        lines += [f"  SKIP  {r.label}: {r.message}" for r in skipped]
    if report.notes:
        lines += ["", "Notes:"] + [f"  {note}" for note in report.notes]
    spend = report.spend
    lines += [
        "",
        f"Spent: {spend.requests} requests ({spend.schema_requests} by Schemathesis), "
        f"{spend.tasks_created} task(s) created, {spend.rate_limited} rate-limited answer(s)",
        _verdict(report),
    ]
    return "\n".join(lines)


def _verdict(report: Report) -> str:
    counts = report.counts()
    word = "PASSED" if report.ok else "FAILED"
    return (
        f"{word}: {counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
        f"{counts[Status.SKIP]} skipped, {counts[Status.DEVIATION]} expected deviation(s) "
        f"in {report.duration:.1f} s"
    )


def junit_xml(report: Report) -> str:
    """JUnit XML: one suite per group, one test case per check; deviations are passing cases
    with their explanation in `system-out`, skips are `skipped`."""
    root = ET.Element("testsuites", name="hiapi-contract")
    groups: dict[str, list[CheckResult]] = {}
    for result in report.results:
        groups.setdefault(result.group, []).append(result)
    for group, results in groups.items():
        suite = ET.SubElement(root, "testsuite", name=group)
        for result in results:
            _case(suite, group, result, report)
        _totals(suite, results)
    _totals(root, report.results)
    root.set("time", f"{report.duration:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _case(suite: ET.Element, group: str, result: CheckResult, report: Report) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"hiapi-contract.{group}",
        name=result.label,
        time=f"{result.duration:.3f}",
    )
    if result.status is Status.FAIL:
        failure = ET.SubElement(case, "failure", message=result.message.splitlines()[0][:500])
        failure.text = (
            "\n\n".join(f.message + (f"\n{f.curl}" if f.curl else "") for f in result.findings)
            or result.message
        )
    elif result.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=result.message[:500])
    elif result.status is Status.DEVIATION:
        text = [f"expected deviation: {result.message}"]
        text += [
            f"{d.rule} x{d.count}: {d.reason}\n{d.curl or ''}"
            for d in report.deviations
            if d.check == result.name and d.subject == result.subject
        ]
        ET.SubElement(case, "system-out").text = "\n".join(text)


def _totals(element: ET.Element, results: list[CheckResult]) -> None:
    element.set("tests", str(len(results)))
    element.set("failures", str(sum(r.status is Status.FAIL for r in results)))
    element.set("skipped", str(sum(r.status is Status.SKIP for r in results)))
    element.set("errors", "0")
    if "time" not in element.attrib:
        element.set("time", f"{sum(r.duration for r in results):.3f}")


def write_reports(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write `report.xml` (JUnit) and `report.json` into `directory`; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    xml_path, json_path = directory / JUNIT_NAME, directory / JSON_NAME
    xml_path.write_text(junit_xml(report), encoding="utf-8")
    json_path.write_text(report.to_json() + "\n", encoding="utf-8")
    return xml_path, json_path
