"""`hiapi-mock`: the command line.

hiapi-mock serve [--config mock.toml] [--host 127.0.0.1] [--port 8000] [--seed N]
                 [--profile fast|realistic|instant] [--clock real|manual] [--time-scale X]
                 [--state PATH] ...

Every flag has a key in the configuration file (`mock_server.settings`); a flag given on the
command line replaces the file's value, a flag left out leaves it alone.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn

from .backend import Backend
from .catalog import PROFILES
from .config import KeyState, MockConfig
from .delivery import Fault
from .grading.cli import add_grade_command, run_grade
from .server import freeze_survivors, uvicorn_config
from .settings import CLOCK_KINDS, Settings, SettingsError, check_option, load_settings
from .sqlite_store import StateError

__all__ = ["build_parser", "main", "overrides", "settings_from_args"]

_SAMPLE_BODY = (
    '{"model":"Nano-Banana-Pro","input":{"prompt":"A luxury product photo of a banana on black '
    'marble","aspect_ratio":"1:1","resolution":"1K","output_format":"png"}}'
)

#: Which option of the configuration file each flag sets (argparse dest: section.key).
_FLAG_OPTIONS = {
    "host": "server.host",
    "port": "server.port",
    "public_url": "server.public_url",
    "control_token": "server.control_token",
    "seed": "fake.seed",
    "profile": "fake.profile",
    "clock": "fake.clock",
    "time_scale": "fake.time_scale",
    "start_time": "fake.start_time",
    "failure_rate": "fake.failure_rate",
    "rate_limit": "fake.rate_limit",
    "journal_size": "fake.journal_size",
    "state": "fake.state",
    "webhook_secret": "callbacks.webhook_secret",
    "callback_https_only": "callbacks.https_only",
    "callback_allow_host": "callbacks.allow_hosts",
    "callback_timeout": "callbacks.timeout",
    "callback_retries": "callbacks.retries",
    "delivery_log_size": "callbacks.log_size",
    "chaos_429": "chaos.rate_429",
    "chaos_503": "chaos.rate_503",
    "chaos_callback": "chaos.callback_faults",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiapi-mock", description="An offline fake of the HiAPI unified async task API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_grade_command(commands)
    # SUPPRESS: a flag left out is absent from the namespace, so it cannot hide the file's value.
    serve = commands.add_parser(
        "serve", help="run the fake HiAPI server", argument_default=argparse.SUPPRESS
    )
    serve.add_argument(
        "--config", metavar="PATH", help="read settings, keys and rules from this TOML file"
    )
    _add_server_flags(serve)
    _add_fake_flags(serve)
    _add_callback_flags(serve)
    _add_chaos_flags(serve)
    return parser


def _add_server_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--host", type=_flag("server.host"), help="address to bind (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_flag("server.port", _int), help="port to bind (default 8000)"
    )
    serve.add_argument(
        "--public-url",
        metavar="URL",
        type=_flag("server.public_url"),
        help="base URL put in output links (default: as requested)",
    )
    serve.add_argument(
        "--control-token",
        type=_flag("server.control_token"),
        metavar="TOKEN",
        help="require X-Mock-Token: TOKEN on the /_mock control API (default: open)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        type=_flag("keys.key"),
        help="accept only these keys (repeatable; replaces the file's [[keys]]; "
        "default: any sk-...)",
    )


def _add_fake_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--seed",
        type=_flag("fake.seed", _int),
        metavar="N",
        help="seed for ids, outcomes and timings",
    )
    serve.add_argument("--profile", choices=sorted(PROFILES), help="task timings (default fast)")
    serve.add_argument(
        "--clock",
        choices=CLOCK_KINDS,
        help="real: runs from --start-time at --time-scale; manual: frozen at --start-time "
        "(default 2026-01-01T00:00:00Z) until POST /_mock/clock/advance (default real)",
    )
    serve.add_argument(
        "--time-scale",
        metavar="X",
        type=_flag("fake.time_scale", _float),
        help="how fast the real clock runs against the wall clock (0 freezes it; default 1)",
    )
    serve.add_argument(
        "--start-time",
        metavar="T",
        type=_flag("fake.start_time"),
        help="where the fake's clock starts: Unix seconds or ISO 8601, UTC unless a zone is "
        "given (default: now)",
    )
    serve.add_argument(
        "--failure-rate",
        metavar="P",
        type=_flag("fake.failure_rate", _float),
        help="share of tasks that end in fail with TASK_FAILED, drawn from the seed (default 0)",
    )
    serve.add_argument(
        "--rate-limit",
        type=_switch,
        metavar="on|off",
        help="enforce 60 requests a minute and 10 at once (default: on in realistic only)",
    )
    serve.add_argument(
        "--journal-size",
        type=_flag("fake.journal_size", _int),
        metavar="N",
        help="how many requests GET /_mock/journal keeps (default 10000)",
    )
    serve.add_argument(
        "--state",
        type=_flag("fake.state"),
        metavar="PATH",
        help="keep tasks, idempotency keys, rules, the clock and owed callbacks in this SQLite "
        "file, and go on from it after a restart (default: in memory, lost on exit)",
    )


def _add_callback_flags(serve: argparse.ArgumentParser) -> None:
    hooks = serve.add_argument_group("callbacks")
    hooks.add_argument(
        "--webhook-secret",
        type=_flag("callbacks.webhook_secret"),
        metavar="KEY",
        help="sign callbacks with this key (16 to 256 characters); default: unsigned",
    )
    hooks.add_argument(
        "--callback-https-only",
        action=argparse.BooleanOptionalAction,
        help="refuse http:// callback URLs, as the Nano-Banana-Pro page asks",
    )
    hooks.add_argument(
        "--callback-allow-host",
        action="append",
        metavar="HOST",
        help="only send callbacks to this host (repeatable; *.example.com matches subdomains)",
    )
    hooks.add_argument(
        "--callback-timeout",
        type=_flag("callbacks.timeout", _float),
        metavar="SECONDS",
        help="how long one delivery attempt may take (default 10)",
    )
    hooks.add_argument(
        "--callback-retries",
        type=_flag("callbacks.retries", _floats),
        metavar="S,S,...",
        help="delays before each retry, on the fake's clock (default 60,300,1200)",
    )
    hooks.add_argument(
        "--delivery-log-size",
        type=_flag("callbacks.log_size", _int),
        metavar="N",
        help="how many delivery attempts GET /_mock/deliveries keeps (default 100000)",
    )


def _add_chaos_flags(serve: argparse.ArgumentParser) -> None:
    chaos = serve.add_argument_group("chaos (shares drawn from the seed)")
    chaos.add_argument(
        "--chaos-429",
        type=_flag("chaos.rate_429", _float),
        metavar="RATE",
        help="share of /v1 requests answered 429 (default 0)",
    )
    chaos.add_argument(
        "--chaos-503",
        type=_flag("chaos.rate_503", _float),
        metavar="RATE",
        help="share of /v1 requests answered 503 (default 0)",
    )
    kinds = ", ".join(fault.value for fault in Fault)
    chaos.add_argument(
        "--chaos-callback",
        type=_fault_rate,
        action="append",
        metavar="KIND=RATE",
        help=f"share of callbacks given a fault (repeatable; {kinds})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "grade":
        return run_grade(args)
    try:
        settings = settings_from_args(args)
        app = settings.create_app()
    except (SettingsError, StateError) as exc:
        parser.error(str(exc))
    backend: Backend = app.state.backend
    print(_banner(settings, len(backend.store)), flush=True)
    try:
        # The guarded protocol: bounded header time and size, bodies refused while streaming.
        config = uvicorn_config(app, settings.host, settings.port, log_level="info")
        freeze_survivors()  # this process only serves: keeps collection pauses short
        uvicorn.Server(config).run()
    finally:
        backend.close()  # commits what is queued and closes the state file
    return 0


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The `--config` file's settings (or the defaults), with the flags given on top."""
    return load_settings(getattr(args, "config", None), overrides(args))


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, in the configuration file's shape (`{"fake": {"seed": 7}}`)."""
    given = vars(args)
    document: dict[str, dict[str, Any]] = {}
    for dest, option in _FLAG_OPTIONS.items():
        if dest in given:
            section, key = option.split(".")
            document.setdefault(section, {})[key] = given[dest]
    if "chaos_callback" in given:  # one KIND=RATE per flag: merged, the last of a kind wins
        document["chaos"]["callback_faults"] = dict(given["chaos_callback"])
    result: dict[str, Any] = dict(document)
    if "api_key" in given:
        result["keys"] = [{"key": key} for key in given["api_key"]]
    return result


# -- the banner ----------------------------------------------------------------------------------


def _banner(settings: Settings, tasks: int = 0) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    config = settings.config
    key = _sample_key(config)
    bearer = shlex.quote("Authorization: Bearer " + key)
    curl = (
        f"curl -s {url}/v1/tasks -H {bearer} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(_SAMPLE_BODY)}"
    )
    lines = [
        f"hiapi-mock: HiAPI on {url}  (profile {config.profile_timing().name}, "
        f"seed {config.seed}, {_clock_summary(settings)})",
        f"  base URL:  {url}    API key: {key}",
        f"  create:    {curl}",
        f"  poll:      curl -s {url}/v1/tasks/TASK_ID -H {bearer}",
        f"  control:   {url}/_mock/  (described at {url}/_mock/openapi.yaml"
        f"{'; send X-Mock-Token: TOKEN' if config.control_token else ''})",
    ]
    if settings.clock_kind == "manual":
        lines.append(
            f"  clock:     manual, frozen at {_iso(settings.clock.now())} until "
            f"POST {url}/_mock/clock/advance"
        )
        lines.append(f"  advance:   {_advance_curl(url, config)}")
    if settings.state is not None:
        lines.append(f"  state:     {settings.state} (SQLite; {_count(tasks, 'task')} kept)")
    if settings.source is not None:
        lines.append(
            f"  config:    {settings.source} ({_count(len(config.keys), 'key')}, "
            f"{_count(len(settings.rules), 'rule')})"
        )
    return "\n".join(lines)


def _sample_key(config: MockConfig) -> str:
    active = [key for key, policy in config.keys.items() if policy.state is KeyState.ACTIVE]
    return next(iter(active or config.keys), "sk-test")


def _clock_summary(settings: Settings) -> str:
    if settings.clock_kind == "manual":
        return "manual clock"
    return f"time x{settings.clock.speed:g}"


def _advance_curl(url: str, config: MockConfig) -> str:
    token = " -H 'X-Mock-Token: TOKEN'" if config.control_token else ""
    return (
        f"curl -s -X POST {url}/_mock/clock/advance{token} "
        f"-H 'Content-Type: application/json' -d '{{\"seconds\": 60}}'"
    )


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# -- flag values ---------------------------------------------------------------------------------


def _flag(option: str, convert: Callable[[str], Any] = str) -> Callable[[str], Any]:
    """An argparse type: the text converted, then checked as the file's `option` is."""

    def parse(text: str) -> Any:
        try:
            return check_option(option, convert(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"must be a whole number, not {text[:40]!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"must be a number, not {text[:40]!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError("expected seconds separated by commas") from None


def _switch(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"must be on or off, not {text[:40]!r}")
    return text == "on"


def _fault_rate(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE such as drop=0.05, not {text!r}")
    try:
        checked = check_option("chaos.callback_faults", {kind: _float(rate)})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return kind, checked[kind]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
