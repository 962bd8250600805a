"""`hiapi-contract`: check any HiAPI base URL against `openapi.yaml`.

hiapi-contract check [--base-url URL] [--api-key KEY [--api-key KEY2]] [--live] [--max-tasks N]
                     [--report DIR] [--seed N] [--examples N] [--callback-url URL]
                     [--callback-listen HOST:PORT] [--webhook-secret S] [--only GROUP ...]

Without `--base-url` it starts hiapi-mock in this process and checks that. Exit status 0 only
when every check passes (skips and expected deviations are allowed, and shown).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError
from .report import JSON_NAME, JUNIT_NAME, render, result_line
from .results import CheckResult
from .runner import DEFAULT_EXAMPLES, GROUPS, LIVE_BASE_URL, LIVE_MAX_TASKS, check

__all__ = ["build_parser", "main"]

_USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiapi-contract",
        description="Check a HiAPI endpoint (live, hiapi-mock, any fake) against openapi.yaml.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("check", help="run the contract checks and report")
    target = run.add_argument_group("target")
    target.add_argument(
        "--base-url", help="the endpoint to check (default: hiapi-mock, started here)"
    )
    target.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="API key; give it twice to check that one key cannot see another's tasks",
    )
    target.add_argument(
        "--live",
        action="store_true",
        help=f"the live API ({LIVE_BASE_URL} unless --base-url): budgeted, throttled, "
        "no create fuzzing",
    )
    target.add_argument(
        "--max-tasks",
        type=_non_negative,
        default=None,
        metavar="N",
        help=f"at most N tasks created on purpose (default {LIVE_MAX_TASKS} with --live, "
        "else no limit)",
    )
    hooks = run.add_argument_group("callbacks")
    hooks.add_argument(
        "--callback-url", help="public URL of this machine's receiver (needed for a remote target)"
    )
    hooks.add_argument(
        "--callback-listen",
        metavar="HOST:PORT",
        help="where the receiver listens (default 127.0.0.1, at --callback-url's port if it has "
        "one, else a free port)",
    )
    hooks.add_argument(
        "--webhook-secret", help="the account's webhook signing key, to verify callback signatures"
    )
    hooks.add_argument(
        "--retry-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for a refused callback to come again",
    )
    how = run.add_argument_group("run")
    how.add_argument("--seed", type=int, default=0, help="seed for generated data (default 0)")
    how.add_argument(
        "--examples",
        type=_positive,
        default=DEFAULT_EXAMPLES,
        metavar="N",
        help=f"Schemathesis examples per operation and phase (default {DEFAULT_EXAMPLES})",
    )
    how.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        default=None,
        metavar="GROUP",
        help=f"run only these groups (repeatable): {', '.join(GROUPS)}",
    )
    how.add_argument(
        "--report", type=Path, metavar="DIR", help=f"write {JUNIT_NAME} and {JSON_NAME} here"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `hiapi-contract`; 0 when every check passed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.live and not args.api_key:
        parser.error("--live needs --api-key")
    if args.base_url and not args.api_key:
        parser.error("--base-url needs --api-key")
    if args.max_tasks is None and args.live:
        print(f"--live: task budget {LIVE_MAX_TASKS} (set it with --max-tasks)", flush=True)

    def progress(result: CheckResult) -> None:
        print(result_line(result), flush=True)

    def log(text: str) -> None:
        print(f"# {text}", flush=True)

    try:
        report = check(
            args.base_url,
            args.api_key,
            live=args.live,
            max_tasks=args.max_tasks,
            seed=args.seed,
            examples=args.examples,
            callback_url=args.callback_url,
            callback_listen=args.callback_listen,
            webhook_secret=args.webhook_secret,
            groups=args.only,
            retry_wait=args.retry_wait,
            report_dir=args.report,
            on_result=progress,
            log=log,
        )
    except UsageError as exc:
        print(f"hiapi-contract: {exc}", file=sys.stderr)
        return _USAGE_ERROR
    print()
    print(render(report), flush=True)
    if args.report is not None:
        print(f"reports: {args.report / JUNIT_NAME}, {args.report / JSON_NAME}", flush=True)
    return report.exit_code


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
