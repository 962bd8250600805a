"""Callback conformance, seen from a real receiver the harness runs.

For each finished task that asked for one: a callback arrives (at least once), its body is the
task exactly as `GET /v1/tasks/{id}` returns it (storage fields may be left out), it validates
against the `callbacks` schema of `createTask`, and with `--webhook-secret` its signature is
HMAC-SHA256 over `timestamp + "." + raw body`, computed here independently of the fake's code.
Last, a receiver that refuses the first delivery must see it again: against hiapi-mock the fake's
clock is moved past the first retry delay through `/_mock/`; elsewhere the harness waits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import Any

from mock_server.receiver import CallbackReceiver, ReceivedCallback

from . import tasks
from .context import Context, Skip, TaskRun, Verdict, reproducible, verdict
from .results import Finding, Status

__all__ = ["TOLERANCE", "run", "signature"]

#: Receivers reject timestamps further than this from their clock (docs).
TOLERANCE = 300
_TIMESTAMP = re.compile(r"[0-9]+")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
#: Fields a callback may leave out of the task (docs: "storage-specific fields").
_OPTIONAL = {"storage"}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `timestamp + "." + body`, keyed with the secret's UTF-8."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def run(ctx: Context) -> None:
    receiver = ctx.receiver
    if receiver is None or ctx.callback_base is None:
        reason = "needs --callback-url: a public URL of this machine the target can reach"
        for name in ("callbacks.delivered", "callbacks.retry"):
            ctx.run(name, _skip(reason))
        return
    for purpose, make in (("lifecycle", tasks.primary), ("fail", tasks.failing)):
        try:
            task = make(ctx)
        except Skip as skip:
            ctx.run("callbacks.delivered", _skip(skip.reason), subject=purpose)
            continue
        _task_checks(ctx, receiver, task)
    ctx.run("callbacks.retry", lambda: _retry(ctx, receiver), source="example")


def _skip(reason: str) -> Callable[[], Verdict]:
    def check() -> Verdict:
        raise Skip(reason)

    return check


def _task_checks(ctx: Context, receiver: CallbackReceiver, task: TaskRun) -> None:
    got: list[ReceivedCallback] | None = None

    def deliveries() -> list[ReceivedCallback]:
        nonlocal got
        if got is None:
            got = _arrived(ctx, receiver, task, 1, ctx.pacing.callback_wait)
        if not got:
            raise Skip("no callback arrived (callbacks.delivered reports it)")
        return got

    def delivered() -> Verdict:
        try:
            deliveries()
        except Skip:
            waited = ctx.pacing.callback_wait
            return verdict([Finding(f"no callback for {task.task_id} within {waited:g} s")], "")
        assert got is not None
        return Status.PASS, f"{len(got)} delivery(ies) for the {_final_status(task)} task", []

    checks: list[tuple[str, str, Callable[[], Verdict]]] = [
        ("callbacks.delivered", "docs", delivered),
        ("callbacks.body_matches_get", "docs", lambda: _matches_get(ctx, task, deliveries())),
        ("callbacks.schema", "docs", lambda: _schema(ctx, deliveries())),
        ("callbacks.signature", "docs", lambda: _signed(ctx, deliveries())),
    ]
    # A callback is the target's own request: what reproduces it is the create that asked for it.
    created = ctx.http.curl(task.response.request)
    for name, source, check in checks:
        ctx.run(name, _with_curl(check, created), source=source, subject=task.purpose)


def _with_curl(check: Callable[[], Verdict], curl: str) -> Callable[[], Verdict]:
    return lambda: reproducible(check(), curl)


def _arrived(
    ctx: Context, receiver: CallbackReceiver, task: TaskRun, count: int, wait: float
) -> list[ReceivedCallback]:
    """This task's deliveries once `count` arrived, or what arrived within `wait` seconds."""
    if task.task_id is None:
        return []
    interval = min(ctx.pacing.poll_interval, 0.5)
    ends = time.monotonic() + wait
    for _ in range(int(wait / interval) + 2):
        found = receiver.for_task(task.task_id)
        if len(found) >= count or time.monotonic() >= ends:
            return found
        ctx.pause(interval)
    return receiver.for_task(task.task_id)


def _final_status(task: TaskRun) -> str:
    final = task.followed.final if task.followed is not None else None
    return str(final.get("status")) if final else "unfinished"


def _matches_get(ctx: Context, task: TaskRun, deliveries: list[ReceivedCallback]) -> Verdict:
    response = ctx.http.get(f"/v1/tasks/{task.task_id}")
    expected = _json_data(response)
    if response.status_code != 200 or expected is None:
        return verdict([ctx.finding(f"GET answered {response.status_code}", response)], "")
    findings: list[Finding] = []
    for number, delivery in enumerate(deliveries, 1):
        try:
            body = delivery.json()
        except ValueError:
            findings.append(Finding(f"delivery {number}: the body is not JSON"))
            continue
        findings += [Finding(f"delivery {number}: {d}") for d in _differences(body, expected)]
    return verdict(findings, "each delivery's body is the task as GET returns it")


def _differences(body: Any, expected: dict[str, Any]) -> list[str]:
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    if "data" in body and "taskId" not in body:
        return ["the body is wrapped in the envelope; it must be the task itself"]
    found = []
    for name in sorted(set(body) | set(expected)):
        if name not in body and name in _OPTIONAL:
            continue
        if body.get(name) != expected.get(name):
            found.append(f"{name} is {body.get(name)!r}, GET says {expected.get(name)!r}")
    return found


def _schema(ctx: Context, deliveries: list[ReceivedCallback]) -> Verdict:
    findings: list[Finding] = []
    for number, delivery in enumerate(deliveries, 1):
        kind = delivery.headers.get("content-type", "").split(";")[0].strip().lower()
        if delivery.method != "POST" or kind != "application/json":
            findings.append(
                Finding(
                    f"delivery {number}: {delivery.method} with {kind or 'no'} Content-Type, "
                    "expected a JSON POST"
                )
            )
        try:
            body = delivery.json()
        except ValueError:
            findings.append(Finding(f"delivery {number}: the body is not JSON"))
            continue
        problems = ctx.facts.document.validate_ref(ctx.facts.callback_schema, body)
        findings += [Finding(f"delivery {number}: {p}") for p in problems]
        findings += [Finding(f"delivery {number}: {p}") for p in _header_shapes(delivery)]
    return verdict(findings, "every delivery validates against the callbacks schema")


def _header_shapes(delivery: ReceivedCallback) -> list[str]:
    stamp = delivery.headers.get("x-hiapi-timestamp")
    sig = delivery.headers.get("x-hiapi-signature")
    found = []
    if stamp is not None and not _TIMESTAMP.fullmatch(stamp):
        found.append(f"X-HiAPI-Timestamp {stamp!r} is not Unix seconds")
    if sig is not None and not _SIGNATURE.fullmatch(sig):
        found.append(f"X-HiAPI-Signature {sig[:80]!r} is not 64 lowercase hex digits")
    return found


def _signed(ctx: Context, deliveries: list[ReceivedCallback]) -> Verdict:
    secret = ctx.target.webhook_secret
    if secret is None:
        raise Skip("no --webhook-secret given: signatures cannot be checked")
    findings: list[Finding] = []
    for number, delivery in enumerate(deliveries, 1):
        problem = _signature_problem(secret, delivery)
        if problem is not None:
            findings.append(Finding(f"delivery {number}: {problem}"))
    return verdict(findings, "every delivery is signed with the webhook secret and fresh")


def _signature_problem(secret: str, delivery: ReceivedCallback) -> str | None:
    stamp = delivery.headers.get("x-hiapi-timestamp")
    given = delivery.headers.get("x-hiapi-signature")
    if stamp is None or given is None:
        return "unsigned: X-HiAPI-Timestamp or X-HiAPI-Signature is missing"
    if not _TIMESTAMP.fullmatch(stamp):
        return f"X-HiAPI-Timestamp {stamp!r} is not Unix seconds"
    if abs(delivery.received_at - int(stamp)) > TOLERANCE:
        return f"timestamp {stamp} is more than {TOLERANCE} s from the time it arrived"
    expected = signature(secret, stamp, delivery.body).encode()
    if not hmac.compare_digest(expected, given.encode("utf-8", "replace")):
        return "X-HiAPI-Signature does not match HMAC-SHA256(secret, timestamp + '.' + body)"
    return None


def _retry(ctx: Context, receiver: CallbackReceiver) -> Verdict:
    """Refuse one delivery; the same task must be delivered again."""
    _settle(ctx, receiver)
    receiver.fail_next(1)
    path = "/callbacks/retry"
    ratio = sorted(ctx.facts.ratios)[-1]
    task = ctx.tasks.get("retry") or ctx.create(
        "retry", ctx.body("retry", ratio=ratio, callback_path=path), callback_path=path
    )
    created = ctx.http.curl(task.response.request)
    if task.task_id is None:
        found = ctx.finding(f"create answered {task.response.status_code}", task.response)
        return verdict([found], "")
    ctx.follow(task.task_id)
    first = _arrived(ctx, receiver, task, 1, ctx.pacing.callback_wait)
    if not first:
        missing = Finding(f"no callback for {task.task_id} arrived at all")
        return reproducible(verdict([missing], ""), created)
    if first[0].answered == 200:
        raise Skip("the refusal went to another delivery, so no retry was provoked")
    waited = ctx.pacing.retry_wait
    moved = _advance_clock(ctx)
    again = _arrived(ctx, receiver, task, 2, waited)
    if len(again) < 2:
        how = f"after moving the fake's clock {moved:g} s" if moved else "within the time budget"
        raise Skip(
            f"not observed {how} ({waited:g} s): "
            f"the first retry is due about {_delay(ctx):g} s after a refusal"
        )
    shown = f"refused with {first[0].answered}, delivered again ({len(again)} attempts)"
    return Status.PASS, shown, []


def _settle(ctx: Context, receiver: CallbackReceiver) -> None:
    """Let the earlier tasks' callbacks arrive (bounded), so none takes the refusal."""
    ends = time.monotonic() + ctx.pacing.callback_wait
    for earlier in list(ctx.tasks.values()):
        if earlier.callback_path is not None and earlier.followed is not None:
            _arrived(ctx, receiver, earlier, 1, max(ends - time.monotonic(), 0.0))


def _delay(ctx: Context) -> float:
    return ctx.facts.retry_delays[0] if ctx.facts.retry_delays else 60.0


def _advance_clock(ctx: Context) -> float:
    """Move hiapi-mock's clock past the first retry delay; 0 when the target has no control API."""
    if not ctx.target.control:
        return 0.0
    seconds = _delay(ctx) + 1
    response = ctx.http.post("/_mock/clock/advance", json={"seconds": seconds}, key=None)
    return seconds if response.status_code == 200 else 0.0


def _json_data(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None
