"""The few tasks the harness creates on purpose, made once per run and shared by the groups.

- `lifecycle`: png, a ratio drawn from the seed, with an `Idempotency-Key` and (when a receiver
  is reachable) a callback. Lifecycle, outputs, idempotency, paging, isolation and callback
  checks all look at it, so one task covers most of the contract (the live budget is small).
- `jpeg`: the same with `output_format: jpg` and another ratio.
- `fail`: only against hiapi-mock, which fails a task whose prompt says `[mock:fail=CODE]`; the
  live API cannot be made to fail on demand.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .context import Context, Skip, TaskRun
from .results import CheckResult, Finding, Status

__all__ = ["FAIL_CODE", "Planned", "failing", "jpeg", "planned", "primary"]

FAIL_CODE = "TASK_FAILED"
_TASK_ID_SCHEMA = "TaskCreatedEnvelope"


@dataclass(frozen=True, slots=True)
class Planned:
    """What a task was asked for, so its outputs can be checked against the size table."""

    ratio: str
    resolution: str
    output_format: str


def planned(run: TaskRun) -> Planned:
    params = run.body["input"]
    return Planned(params["aspect_ratio"], params["resolution"], params["output_format"])


def _ratios(ctx: Context) -> tuple[str, str]:
    first, second = random.Random(ctx.seed).sample(sorted(ctx.facts.ratios), 2)
    return first, second


def primary(ctx: Context) -> TaskRun:
    """The `lifecycle` task, created and followed to its end on first use."""
    ratio = _ratios(ctx)[0]
    return _made(ctx, "lifecycle", lambda: ctx.body("lifecycle", ratio=ratio), keyed=True)


def jpeg(ctx: Context) -> TaskRun:
    ratio = _ratios(ctx)[1]
    return _made(ctx, "jpeg", lambda: ctx.body("jpeg", ratio=ratio, output_format="jpg"))


def failing(ctx: Context) -> TaskRun:
    """A task that ends in `fail`; only hiapi-mock can be asked for one."""
    if not ctx.target.control:
        raise Skip("cannot make this target fail a task on demand (no hiapi-mock /_mock/ API)")
    ratio = _ratios(ctx)[0]
    extra = f" [mock:fail={FAIL_CODE}]"
    return _made(ctx, "fail", lambda: ctx.body("fail", ratio=ratio, prompt_extra=extra))


def _made(
    ctx: Context,
    purpose: str,
    make_body: Callable[[], dict[str, Any]],
    *,
    keyed: bool = False,
) -> TaskRun:
    run = ctx.tasks.get(purpose)
    if run is None:
        path = f"/callbacks/{purpose}" if ctx.callback_base else None
        body = make_body()
        if path is not None:
            body["callback"] = {"url": ctx.callback_url(path)}
        headers = {"Idempotency-Key": f"hiapi-contract-{uuid.uuid4()}"} if keyed else None
        started = time.perf_counter()
        run = ctx.create(purpose, body, headers=headers, callback_path=path)
        if run.task_id is not None:
            run.followed = ctx.follow(run.task_id)
        result = _created(ctx, run)
        result.duration = time.perf_counter() - started
        ctx.record(result)
    if run.task_id is None or run.followed is None:
        raise Skip(f"no {purpose} task to look at: lifecycle.create failed for it")
    return run


def _created(ctx: Context, run: TaskRun) -> CheckResult:
    """`lifecycle.create`: 200, the envelope, a well-formed task id, no replay header."""
    response = run.response
    findings: list[Finding] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        findings.append(ctx.finding(f"create answered {response.status_code}, not 200", response))
    else:
        problems = ctx.facts.document.validate_component(_TASK_ID_SCHEMA, body)
        findings += [ctx.finding(f"create answer: {p}", response) for p in problems]
        if response.headers.get("idempotent-replay") is not None:
            findings.append(ctx.finding("a first create carries Idempotent-Replay", response))
    status = Status.FAIL if findings else Status.PASS
    message = findings[0].message if findings else f"created {run.task_id}"
    return CheckResult("lifecycle.create", status, message, run.purpose, findings, source="docs")
