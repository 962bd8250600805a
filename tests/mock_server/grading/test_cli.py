"""`hiapi-mock grade` (for now `python -m mock_server.grading`): usage, exit status, reports."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mock_server.grading.cli import add_grade_command, main, run_grade

from .conftest import CURL, NAIVE, require_curl

pytestmark = pytest.mark.server


def test_list_names_every_scenario_and_grade(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "happy_path" in out and "expired_output" in out
    assert "retry_after" in out and "reconciles_by_polling" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no command to grade"),
        (["--"], "no command to grade"),
        (["--scenarios", "nope", "--", "true"], "unknown scenario(s) nope"),
        (["--timeout", "0", "--", "true"], "--timeout: must be more than 0"),
        (["--scenarios", "happy_path", "--", "/no/such/client"], "cannot run /no/such/client"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_subcommand_fits_hiapi_mocks_parser() -> None:
    # As mock_server.cli names its subcommands: dest="command".
    parser = argparse.ArgumentParser(prog="hiapi-mock")
    add_grade_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["grade", "--scenarios", "happy_path", "--", "./c.sh", "--scenarios"])
    assert args.command == "grade" and args.handler is run_grade
    assert args.client_command == ["--", "./c.sh", "--scenarios"]
    assert args.scenarios == "happy_path"


def test_a_failing_client_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenarios", "rate_limited_create", "--timeout", "20", "--", *NAIVE]) == 1
    out = capsys.readouterr().out
    assert "FAIL  rate_limited_create: exit 0 after" in out  # progress, one line per scenario
    assert "FAIL  rate_limited_create / retry_after: too soon" in out
    assert out.rstrip().splitlines()[-1].startswith("FAILED: ")


def test_one_command_grades_a_client_and_writes_the_reports(tmp_path: Path) -> None:
    require_curl()
    done = subprocess.run(
        [sys.executable, "-m", "mock_server.grading", "--scenarios",
         "happy_path,unavailable_polling", "--report", str(tmp_path), "--", *CURL],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hiapi-mock grade: " in done.stdout and "PASSED: 0 fail" in done.stdout
    data = json.loads((tmp_path / "report.json").read_text())
    assert [s["name"] for s in data["scenarios"]] == ["happy_path", "unavailable_polling"]
    assert (tmp_path / "report.md").read_text().startswith("# hiapi-mock grade:")
    assert (tmp_path / "report.xml").read_text().startswith("<?xml")
