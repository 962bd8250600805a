"""`hiapi-mock`: the command line.

hiapi-mock serve [--host 127.0.0.1] [--port 8000] [--seed N] [--profile fast|realistic|instant]
                 [--time-scale X] [--failure-rate P] [--api-key KEY ...] [--public-url URL]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime

import uvicorn

from .app import create_app
from .callbacks import DeliveryPolicy
from .catalog import PROFILES
from .clock import RealClock
from .config import KeyPolicy, MockConfig

__all__ = ["build_parser", "main"]

_SAMPLE_BODY = (
    '{"model":"Nano-Banana-Pro","input":{"prompt":"A luxury product photo of a banana on black '
    'marble","aspect_ratio":"1:1","resolution":"1K","output_format":"png"}}'
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiapi-mock", description="An offline fake of the HiAPI unified async task API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the fake HiAPI server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--seed", type=int, default=0, help="seed for ids, outcomes and timings")
    serve.add_argument(
        "--profile", choices=sorted(PROFILES), default="fast", help="task timings (default fast)"
    )
    serve.add_argument(
        "--time-scale",
        type=_non_negative,
        default=1.0,
        help="how fast the fake's clock runs against the wall clock (0 freezes it; default 1)",
    )
    serve.add_argument(
        "--start-time",
        type=_timestamp,
        default=None,
        help="where the fake's clock starts: Unix seconds or ISO 8601 (default: now)",
    )
    serve.add_argument(
        "--failure-rate",
        type=_probability,
        default=0.0,
        help="share of tasks that end in fail with TASK_FAILED, drawn from the seed (default 0)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept only these keys (repeatable; default: any sk-... key)",
    )
    serve.add_argument(
        "--public-url", default=None, help="base URL put in output links (default: as requested)"
    )
    hooks = serve.add_argument_group("callbacks")
    hooks.add_argument(
        "--webhook-secret",
        default=None,
        metavar="KEY",
        help="sign callbacks with this key (16 to 256 characters); default: unsigned",
    )
    hooks.add_argument(
        "--callback-https-only",
        action="store_true",
        help="refuse http:// callback URLs, as the Nano-Banana-Pro page asks",
    )
    hooks.add_argument(
        "--callback-allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="only send callbacks to this host (repeatable; *.example.com matches subdomains)",
    )
    hooks.add_argument(
        "--callback-timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="how long one delivery attempt may take (default 10)",
    )
    hooks.add_argument(
        "--callback-retries",
        type=_delays,
        default=(60.0, 300.0, 1200.0),
        metavar="S,S,...",
        help="delays before each retry, on the fake's clock (default 60,300,1200)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = MockConfig(
            seed=args.seed,
            profile=args.profile,
            failure_rate=args.failure_rate,
            keys={key: KeyPolicy() for key in args.api_key},
            public_url=args.public_url,
            webhook_secret=args.webhook_secret,
            delivery=DeliveryPolicy(
                timeout=args.callback_timeout, retry_delays=args.callback_retries
            ),
            callback_https_only=args.callback_https_only,
            callback_hosts=tuple(args.callback_allow_host),
        )
    except ValueError as exc:
        parser.error(str(exc))
    clock = RealClock(start=args.start_time, speed=args.time_scale)
    app = create_app(config, clock=clock)
    print(_banner(args), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", lifespan="off")
    return 0


def _banner(args: argparse.Namespace) -> str:
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}"
    key = args.api_key[0] if args.api_key else "sk-test"
    bearer = shlex.quote("Authorization: Bearer " + key)
    curl = (
        f"curl -s {url}/v1/tasks -H {bearer} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(_SAMPLE_BODY)}"
    )
    return "\n".join(
        [
            f"hiapi-mock: HiAPI on {url}  (profile {args.profile}, seed {args.seed}, "
            f"time x{args.time_scale:g})",
            f"  base URL:  {url}    API key: {key}",
            f"  create:    {curl}",
            f"  poll:      curl -s {url}/v1/tasks/TASK_ID -H {bearer}",
        ]
    )


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds separated by commas") from None
    if any(d < 0 for d in delays):
        raise argparse.ArgumentTypeError("delays must be >= 0")
    return delays


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError("expected Unix seconds or an ISO 8601 time") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
