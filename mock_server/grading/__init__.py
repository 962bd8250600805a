"""Grading a HiAPI client: run it against the fake in named scenarios, judge what it did.

    from mock_server.grading import grade, render_table

    report = grade(["./my-client.sh"])  # or a Python callable taking the environment
    print(render_table(report))
    assert report.ok

Each scenario (`SCENARIOS`) stages one condition through the fake's control plane (a 429 on the
create, 503s while polling, a dropped connection, a refused payload, a failed task, duplicated,
late or lost callbacks, an expired output); each grade (`GRADES`) reads the fake's journal and
delivery log and gives pass, warn or fail with the evidence and the documented rule. The
command line is `hiapi-mock grade` (`cli`); the client contract is in `runner`'s docstring.
"""

from __future__ import annotations

from .clients import ClientFunction, ClientUnderTest, Command, PythonClient
from .errors import GradingError
from .findings import Finding, Verdict
from .grades import GRADES, Grade, GradeResult
from .observe import Evidence, Execution, Observation
from .report import junit_xml, markdown, render_table, to_json, write_reports
from .results import GradeReport, ScenarioResult
from .runner import GradingFake, client_env, grade, run_scenario
from .scenarios import SCENARIOS, Scenario, Stage, select

__all__ = [
    "GRADES",
    "SCENARIOS",
    "ClientFunction",
    "ClientUnderTest",
    "Command",
    "Evidence",
    "Execution",
    "Finding",
    "Grade",
    "GradeReport",
    "GradeResult",
    "GradingError",
    "GradingFake",
    "Observation",
    "PythonClient",
    "Scenario",
    "ScenarioResult",
    "Stage",
    "Verdict",
    "client_env",
    "grade",
    "junit_xml",
    "markdown",
    "render_table",
    "run_scenario",
    "select",
    "to_json",
    "write_reports",
]
