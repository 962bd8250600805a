"""`check()`: one contract run against a base URL (or an in-process fake), as a `Report`.

    report = check()                                    # hiapi-mock, started here
    report = check("http://127.0.0.1:8000", api_key=["sk-a", "sk-b"], webhook_secret="...")
    report = check("https://api.hiapi.ai", api_key="sk-...", live=True, max_tasks=2)
    assert report.ok, report.failed()

Groups run in this order, each reporting its checks as they finish: `lifecycle` (tasks,
statuses, outputs), `behaviour` (errors, idempotency, paging, isolation), `callbacks`, then
`schema` (Schemathesis), which fuzzes last so its tasks and callbacks cannot disturb the others.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Collection, Sequence
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from mock_server.receiver import CallbackReceiver
from mock_server.signing import check_secret

from . import behaviour, callbacks, lifecycle, schema_checks
from .context import Context, Pacing, Target, Verdict
from .errors import UsageError
from .facts import facts
from .fake import DEFAULT_KEYS, default_secret, serve_fake
from .http import Http, Throttle, curl
from .report import write_reports
from .results import CheckResult, Deviation, Finding, Report, Spend, Status

__all__ = [
    "DEFAULT_EXAMPLES",
    "GROUPS",
    "LIVE_BASE_URL",
    "LIVE_MAX_TASKS",
    "LIVE_REQUESTS_PER_MINUTE",
    "check",
]

GROUPS = ("lifecycle", "behaviour", "callbacks", "schema")
DEFAULT_EXAMPLES = 15
LIVE_BASE_URL = "https://api.hiapi.ai"
#: The live API allows 60 a minute per key; the harness keeps well under it.
LIVE_REQUESTS_PER_MINUTE = 50
LIVE_MAX_TASKS = 2
_OTHER_KEY = "sk-hiapi-contract-other"
_RATE_LIMIT_REASON = (
    "docs: 60 requests a minute and 10 at once per key; the harness waited out Retry-After"
)


def check(
    base_url: str | None = None,
    api_key: str | Sequence[str] | None = None,
    *,
    live: bool = False,
    max_tasks: int | None = None,
    seed: int = 0,
    examples: int = DEFAULT_EXAMPLES,
    callback_url: str | None = None,
    callback_listen: str | None = None,
    webhook_secret: str | None = None,
    groups: Collection[str] | None = None,
    retry_wait: float | None = None,
    report_dir: str | Path | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Check `base_url` (default: hiapi-mock started here) against `openapi.yaml`.

    `api_key` may be one key or two (the second makes isolation checkable). `--live` safety:
    a task budget (`max_tasks`, default 2), no fuzzing of `POST /v1/tasks`, under 60
    requests a minute. The report is also written to `report_dir` when given.
    """
    keys = (api_key,) if isinstance(api_key, str) else tuple(api_key or ())
    chosen = tuple(groups) if groups is not None else GROUPS
    unknown = set(chosen) - set(GROUPS)
    if unknown:
        raise UsageError(
            f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}"
        )
    if live:
        base_url = base_url or LIVE_BASE_URL
        max_tasks = LIVE_MAX_TASKS if max_tasks is None else max_tasks
        if not keys:
            raise UsageError("--live needs --api-key")
    if base_url is not None and not keys:
        raise UsageError("checking a base URL needs --api-key")
    if max_tasks is not None and max_tasks < 0:
        raise UsageError("--max-tasks must be 0 or more")
    if examples < 1:
        raise UsageError("--examples must be at least 1")
    if base_url is None and webhook_secret is not None:
        try:
            check_secret(webhook_secret)
        except ValueError as exc:
            raise UsageError(f"--webhook-secret: {exc}") from None
    say = log or (lambda text: None)
    started, clock = time.time(), time.perf_counter()
    with ExitStack() as stack:
        in_process = base_url is None
        if base_url is None:
            webhook_secret = webhook_secret or default_secret(seed)
            keys = keys or DEFAULT_KEYS
            base_url = stack.enter_context(serve_fake(seed, webhook_secret))
            say(f"started hiapi-mock in-process on {base_url}")
        limited: dict[str, Deviation] = {}
        ctx = _context(
            stack, base_url, keys, live=live, in_process=in_process, secret=webhook_secret,
            seed=seed, max_tasks=max_tasks, callback_url=callback_url, listen=callback_listen,
            retry_wait=retry_wait, emit=on_result or (lambda result: None), say=say,
            limited=limited,
        )  # fmt: skip
        if _reachable(ctx):
            for group in GROUPS:
                if group in chosen:
                    _run_group(ctx, group, examples, say)
        ctx.deviations += limited.values()
    report = Report(
        target=ctx.target.base_url,
        results=ctx.results,
        deviations=ctx.deviations,
        spend=ctx.spend,
        notes=ctx.notes,
        live=live,
        seed=seed,
        started_at=started,
        duration=time.perf_counter() - clock,
    )
    if report_dir is not None:
        write_reports(report, Path(report_dir))
    return report


def _context(
    stack: ExitStack,
    base_url: str,
    keys: tuple[str, ...],
    *,
    live: bool,
    in_process: bool,
    secret: str | None,
    seed: int,
    max_tasks: int | None,
    callback_url: str | None,
    listen: str | None,
    retry_wait: float | None,
    emit: Callable[[CheckResult], None],
    say: Callable[[str], None],
    limited: dict[str, Deviation],
) -> Context:
    spend = Spend()

    def rate_limited(response: httpx.Response) -> None:
        label = f"{response.request.method} {response.request.url.path}"
        if label in limited:
            limited[label].count += 1
        else:
            limited[label] = Deviation(
                "rate-limited",
                "harness",
                label,
                _RATE_LIMIT_REASON,
                1,
                curl(response.request, keys),
            )

    throttle = Throttle(LIVE_REQUESTS_PER_MINUTE if live else None)
    http = stack.enter_context(
        Http(base_url, keys, throttle=throttle, spend=spend, on_rate_limited=rate_limited)
    )
    control = not live and _has_control(http)
    keys = _with_second_key(http, keys, control)
    http.keys = list(keys)
    target = Target(base_url.rstrip("/"), keys, secret, live, control, in_process)
    receiver, callback_base = _receiver(stack, target, callback_url, listen)
    pacing = Pacing.for_target(target, retry_wait)
    ctx = Context(
        target, http, facts(), seed=seed, max_tasks=max_tasks, pacing=pacing, emit=emit,
        receiver=receiver, callback_base=callback_base,
    )  # fmt: skip
    ctx.notes += _describe(target, callback_base, max_tasks)
    for note in ctx.notes:
        say(note)
    return ctx


def _run_group(ctx: Context, group: str, examples: int, say: Callable[[str], None]) -> None:
    say(f"{group}: running")
    try:
        if group == "lifecycle":
            lifecycle.run(ctx)
        elif group == "behaviour":
            behaviour.run(ctx)
        elif group == "callbacks":
            callbacks.run(ctx)
        else:
            sink = f"{ctx.callback_base}/sink" if ctx.callback_base else "http://127.0.0.1:9/sink"
            fuzz_create = ctx.max_tasks is None and not ctx.target.live
            schema_checks.run(
                ctx, examples=examples, sink_url=sink, fuzz_create=fuzz_create, log=say
            )
    except Exception as exc:  # a harness bug must show as a failure, never end the run silently
        text = "".join(traceback.format_exception_only(exc)).strip()
        detail = Finding(f"the harness crashed in {group}: {text}\n{traceback.format_exc()}")
        ctx.record(
            CheckResult(
                f"{group}.harness", Status.FAIL, detail.message.splitlines()[0], findings=[detail]
            )
        )


def _reachable(ctx: Context) -> bool:
    """`target.reachable`: the key can list tasks. Without that nothing else is worth running."""

    def probe() -> Verdict:
        response = ctx.http.get("/v1/tasks", params={"size": 1})
        if response.status_code == 200:
            return Status.PASS, "the key lists tasks", []
        found = ctx.finding(f"GET /v1/tasks with the key answered {response.status_code}", response)
        return Status.FAIL, found.message, [found]

    if ctx.run("target.reachable", probe, source="docs").status is Status.PASS:
        return True
    ctx.notes.append("stopped: the target is unreachable or refuses the key")
    return False


def _has_control(http: Http) -> bool:
    """Whether the target is hiapi-mock with its `/_mock/` control API reachable."""
    try:
        response = http.get("/_mock/clock", key=None)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    data = body.get("data") if isinstance(body, dict) else None
    return response.status_code == 200 and isinstance(data, dict) and "now" in data


def _with_second_key(http: Http, keys: tuple[str, ...], control: bool) -> tuple[str, ...]:
    """Two keys when given; against hiapi-mock, try another `sk-` key (it may accept any)."""
    if len(keys) >= 2 or not control or not keys:
        return keys
    other = _OTHER_KEY if keys[0] != _OTHER_KEY else _OTHER_KEY + "-2"
    response = http.get("/v1/tasks", key=other, params={"size": 1})
    return (keys[0], other) if response.status_code == 200 else keys


def _receiver(
    stack: ExitStack, target: Target, callback_url: str | None, listen: str | None
) -> tuple[CallbackReceiver | None, str | None]:
    if callback_url is None and not target.local:
        return None, None
    host, port = _listen_address(listen, callback_url)
    receiver = stack.enter_context(CallbackReceiver(host, port))
    return receiver, callback_url or receiver.url


def _listen_address(listen: str | None, callback_url: str | None) -> tuple[str, int | None]:
    if listen:
        host, _, number = listen.rpartition(":")
        if not number.isdigit():
            raise UsageError(f"--callback-listen must be HOST:PORT, not {listen!r}")
        return host or "127.0.0.1", int(number) or None
    port = urlsplit(callback_url).port if callback_url else None
    return "127.0.0.1", port


def _describe(target: Target, callback_base: str | None, max_tasks: int | None) -> list[str]:
    if target.in_process:
        kind = "in-process hiapi-mock"
    elif target.control:
        kind = "hiapi-mock (its /_mock/ control API answered)"
    elif target.live:
        kind = "live HiAPI"
    else:
        kind = "an unknown HiAPI endpoint"
    notes = [f"target: {target.base_url} ({kind})"]
    notes.append(
        f"keys: {len(target.keys)}"
        + ("" if len(target.keys) > 1 else " (isolation needs a second key)")
    )
    notes.append(
        f"callbacks received at {callback_base}"
        if callback_base
        else "callbacks: no receiver reachable by the target (give --callback-url)"
    )
    notes.append(f"task budget: {max_tasks}" if max_tasks is not None else "task budget: none")
    if target.live:
        notes.append(
            f"live: at most {LIVE_REQUESTS_PER_MINUTE} requests a minute, "
            "POST /v1/tasks never fuzzed"
        )
    return notes
