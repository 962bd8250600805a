"""`hiapi-mock grade`: grade a HiAPI client in one command.

    hiapi-mock grade [--scenarios all|NAME,...] [--report DIR] [--timeout S] -- COMMAND [ARGS...]

Until `mock_server.cli` wires it in, `python -m mock_server.grading [options] -- COMMAND` does the
same. Exit status: 0 when no grade failed (warnings allowed), 1 on any fail, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import GradingError
from .grades import GRADES
from .report import render_table, write_reports
from .results import ScenarioResult
from .runner import DEFAULT_TIMEOUT, grade
from .scenarios import SCENARIOS, select

__all__ = ["add_grade_command", "build_parser", "main", "run_grade"]

_DESCRIPTION = "Run a HiAPI client against the fake in named scenarios and grade what it did."
_CONTRACT = """\
the client contract (environment variables the command is given):
  HIAPI_BASE_URL, HIAPI_API_KEY   the fake's base URL (no /v1) and the key to send
  HIAPI_TASK                      the create body to POST, as JSON
  HIAPI_MODEL, HIAPI_PROMPT       its model and prompt, for clients that build the body
  HIAPI_OUTPUT_DIR                an empty folder: save the output file(s) here
  HIAPI_CALLBACK_PORT             callback scenarios only: serve your receiver on
  HIAPI_CALLBACK_URL              127.0.0.1 at this port, before creating the task, and
                                  send this URL as callback.url
Create one task, follow it to its end, save the output and exit 0; exit non-zero when the task
fails, the create is refused or the output cannot be fetched.

exit status: 0 no grade failed (warnings allowed), 1 a grade failed, 2 usage error
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(s.name for s in SCENARIOS)
    parser.add_argument(
        "--scenarios",
        default="all",
        metavar="all|NAME,...",
        help=f"which scenarios to run, in order (default all: {names})",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write report.md, report.json and report.xml (JUnit) here",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop the client after this long in one scenario (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="the fake's seed (default 0)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the scenarios and grades, then exit"
    )
    parser.add_argument(
        "client_command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND [ARGS...]",
        help="the client to grade, run once per scenario",
    )


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _add_arguments(parser)
    parser.set_defaults(handler=run_grade)
    return parser


def add_grade_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `grade` to `hiapi-mock`'s subcommands; its namespace carries `handler=run_grade`."""
    parser = subparsers.add_parser(
        "grade",
        help="grade a HiAPI client against the fake",
        description=_DESCRIPTION,
        epilog=_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _configure(parser)


def build_parser() -> argparse.ArgumentParser:
    """The standalone parser of `python -m mock_server.grading`."""
    parser = argparse.ArgumentParser(
        prog="hiapi-mock grade",
        description=_DESCRIPTION,
        epilog=_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _configure(parser)


def run_grade(args: argparse.Namespace) -> int:
    """Carry out `hiapi-mock grade`; the exit status."""
    if args.list:
        print(listing())
        return 0
    command = list(args.client_command)
    if command[:1] == ["--"]:
        command = command[1:]
    try:
        if not command:
            raise GradingError("no command to grade: hiapi-mock grade [options] -- COMMAND")
        if args.timeout <= 0:
            raise GradingError("--timeout: must be more than 0 seconds")
        report = grade(
            command,
            select(args.scenarios),
            timeout=args.timeout,
            seed=args.seed,
            on_result=_progress,
        )
    except GradingError as exc:
        print(f"hiapi-mock grade: error: {exc}", file=sys.stderr)
        return 2
    print("", flush=True)
    print(render_table(report), flush=True)
    if args.report is not None:
        paths = write_reports(report, args.report)
        print("reports: " + ", ".join(str(p) for p in paths), flush=True)
    return report.exit_code


def _progress(result: ScenarioResult) -> None:
    run = result.execution
    ended = "killed at the timeout" if run.timed_out else f"exit {run.exit_code}"
    counts = ", ".join(
        f"{sum(g.verdict == v for g in result.grades)} {v.value}"
        for v in sorted({g.verdict for g in result.grades})
    )
    print(
        f"{result.verdict.value.upper():4}  {result.scenario.name}: {ended} after "
        f"{run.wall:.1f} s, {result.requests} requests ({counts})",
        flush=True,
    )


def listing() -> str:
    """The scenarios and grades, as `--list` prints them."""
    lines = ["scenarios:"]
    for s in SCENARIOS:
        extra = f"; clock x{s.speed:g}" if s.speed != 1 else ""
        extra += "; gives a callback port" if s.callbacks else ""
        lines.append(f"  {s.name:22} {s.summary} (expects {s.expect}{extra})")
    lines += ["", "grades:"]
    for g in GRADES:
        lines.append(f"  {g.name:22} {g.title}")
        lines += textwrap.wrap(g.rule, 96, initial_indent=" " * 25, subsequent_indent=" " * 25)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mock_server.grading [options] -- COMMAND`."""
    args = build_parser().parse_args(argv)
    return run_grade(args)
