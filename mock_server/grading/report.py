"""A `GradeReport` for people and for CI: a terminal table, Markdown, JSON and JUnit XML.

The table has a row per scenario and a column per grade (`-`: not exercised there); every grade
that did not pass follows with its reason, the rule, the recommended behaviour and the evidence.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .findings import Verdict
from .grades import GRADES, GradeResult
from .observe import Execution
from .results import GradeReport, ScenarioResult

__all__ = [
    "JSON_NAME",
    "JUNIT_NAME",
    "MARKDOWN_NAME",
    "junit_xml",
    "markdown",
    "render_table",
    "to_json",
    "write_reports",
]

MARKDOWN_NAME, JSON_NAME, JUNIT_NAME = "report.md", "report.json", "report.xml"
_CELL = {Verdict.PASS: "pass", Verdict.WARN: "WARN", Verdict.FAIL: "FAIL"}
_INDENT = " " * 6


def _exit(execution: Execution) -> str:
    return "kill" if execution.timed_out else str(execution.exit_code)


def _rows(report: GradeReport) -> list[list[str]]:
    rows = [["scenario", "exit", "time", *(g.column for g in GRADES)]]
    for result in report.results:
        run = result.execution
        cells = [_CELL[r.verdict] if (r := result.get(g.name)) else "-" for g in GRADES]
        rows.append([result.scenario.name, _exit(run), f"{run.wall:.1f}s", *cells])
    return rows


def verdict_line(report: GradeReport) -> str:
    counts = report.counts()
    word = "PASSED" if report.ok else "FAILED"
    return (
        f"{word}: {counts[Verdict.FAIL]} fail, {counts[Verdict.WARN]} warn, "
        f"{counts[Verdict.PASS]} pass in {len(report.results)} scenario(s), "
        f"{report.duration:.1f} s"
    )


def render_table(report: GradeReport) -> str:
    """The terminal report: the table, then every warning and failure with its evidence."""
    rows = _rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"hiapi-mock grade: {report.client}", ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]  # fmt: skip
    findings = report.findings()
    if findings:
        lines += ["", "Findings:"]
        for result, grade in findings:
            lines += _finding_lines(result, grade)
    lines += ["", "Columns: " + ", ".join(f"{g.column}={g.name}" for g in GRADES)]
    lines += [verdict_line(report)]
    return "\n".join(lines)


def _finding_lines(result: ScenarioResult, grade: GradeResult) -> list[str]:
    head = f"{_CELL[grade.verdict]}  {result.scenario.name} / {grade.grade}: {grade.reason}"
    lines = [head, f"{_INDENT}rule: {grade.rule}", f"{_INDENT}do:   {grade.advice}"]
    lines += [f"{_INDENT}  {evidence}" for evidence in grade.evidence]
    return lines


# -- Markdown -----------------------------------------------------------------------------------


def markdown(report: GradeReport) -> str:
    """The report as Markdown: the table, findings with evidence, then what each grade means."""
    rows = _rows(report)
    header, *body = rows
    lines = [f"# hiapi-mock grade: `{report.client}`", "", f"**{verdict_line(report)}**", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in body]
    findings = report.findings()
    if findings:
        lines += ["", "## Findings"]
        for result, grade in findings:
            lines += [
                "",
                f"### {_CELL[grade.verdict]} `{result.scenario.name}` / `{grade.grade}`",
                "",
                grade.reason,
                "",
                f"- Rule: {grade.rule}",
                f"- Recommended: {grade.advice}",
            ]
            if grade.evidence:
                lines += ["", "```", *(str(e) for e in grade.evidence), "```"]
    lines += ["", "## Scenarios", ""]
    for result in report.results:
        scenario = result.scenario
        speed = f", clock x{scenario.speed:g}" if scenario.speed != 1 else ""
        lines.append(f"- `{scenario.name}`: {scenario.summary} (expects {scenario.expect}{speed})")
    lines += ["", "## Grades", ""]
    lines += [f"- `{g.name}` ({g.column}): {g.title}. {g.rule}" for g in GRADES]
    return "\n".join(lines) + "\n"


def _md_cell(cell: str) -> str:
    return f"**{cell}**" if cell in ("WARN", "FAIL") else cell


# -- JSON and JUnit ------------------------------------------------------------------------------


def to_json(report: GradeReport) -> dict[str, Any]:
    """Everything the run found, as JSON-ready data."""
    counts = report.counts()
    return {
        "client": report.client,
        "ok": report.ok,
        "duration": round(report.duration, 3),
        "counts": {v.value: counts[v] for v in Verdict},
        "scenarios": [_scenario_json(r) for r in report.results],
    }


def _scenario_json(result: ScenarioResult) -> dict[str, Any]:
    run = result.execution
    return {
        "name": result.scenario.name,
        "summary": result.scenario.summary,
        "speed": result.scenario.speed,
        "expect": result.scenario.expect,
        "verdict": result.verdict.value,
        "exit_code": run.exit_code,
        "timed_out": run.timed_out,
        "wall": round(run.wall, 3),
        "requests": result.requests,
        "deliveries": result.deliveries,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "grades": [
            {
                "grade": g.grade,
                "verdict": g.verdict.value,
                "reason": g.reason,
                "rule": g.rule,
                "advice": g.advice,
                "evidence": [{"at": round(e.at, 6), "text": e.text} for e in g.evidence],
            }
            for g in result.grades
        ],
    }


def junit_xml(report: GradeReport) -> str:
    """JUnit XML: a suite per scenario, a case per grade; a warning passes, its reason in
    `system-out`; a fail is a `failure` with the rule, the advice and the evidence."""
    counts = report.counts()
    root = ET.Element(
        "testsuites",
        name="hiapi-mock grade",
        tests=str(sum(counts.values())),
        failures=str(counts[Verdict.FAIL]),
        time=f"{report.duration:.3f}",
    )
    for result in report.results:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=result.scenario.name,
            tests=str(len(result.grades)),
            failures=str(sum(g.verdict is Verdict.FAIL for g in result.grades)),
            time=f"{result.execution.wall:.3f}",
        )
        for grade in result.grades:
            case = ET.SubElement(
                suite, "testcase", classname=f"grade.{result.scenario.name}", name=grade.grade
            )
            details = "\n".join(
                [f"rule: {grade.rule}", f"do: {grade.advice}", *map(str, grade.evidence)]
            )
            if grade.verdict is Verdict.FAIL:
                failure = ET.SubElement(case, "failure", message=grade.reason, type="fail")
                failure.text = details
            else:
                ET.SubElement(case, "system-out").text = f"{grade.verdict.value}: {grade.reason}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_reports(report: GradeReport, directory: Path) -> list[Path]:
    """Write `report.md`, `report.json` and `report.xml` (JUnit) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / MARKDOWN_NAME, directory / JSON_NAME, directory / JUNIT_NAME]
    paths[0].write_text(markdown(report), encoding="utf-8")
    paths[1].write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
    paths[2].write_text(junit_xml(report), encoding="utf-8")
    return paths
