"""Lifecycle conformance: what a task looks like while it runs and after it ends.

For each task the harness follows (polling, bounded): it ends; its statuses appear only in the
order `TaskStatus.x-transitions` allows and a terminal status sticks; every read validates as a
`Task`; `completed` is 0 until the end; `expireAt = completed + 604800`. Outputs are checked in
`outputs.py`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from . import outputs, tasks
from .context import Context, Followed, Skip, TaskRun, Verdict, reproducible, verdict
from .facts import OUTPUT_TTL, TEMP_OUTPUT_TTL
from .results import Finding, Status

__all__ = ["run"]


def run(ctx: Context) -> None:
    """Every lifecycle and output check, on the `lifecycle`, `jpeg` and `fail` tasks."""
    plan: tuple[tuple[str, Callable[[Context], TaskRun], str], ...] = (
        ("lifecycle", tasks.primary, "success"),
        ("jpeg", tasks.jpeg, "success"),
        ("fail", tasks.failing, "fail"),
    )
    for purpose, make, expected in plan:
        try:
            task = make(ctx)
        except Skip as skip:
            ctx.run("lifecycle.terminal_reached", _skipped(skip), subject=purpose)
            continue
        _follow_checks(ctx, task, expected)
        if expected == "success":
            outputs.run(ctx, task)


def _skipped(skip: Skip) -> Callable[[], Verdict]:
    def check() -> Verdict:
        raise skip

    return check


def _follow_checks(ctx: Context, task: TaskRun, expected: str) -> None:
    followed = task.followed
    assert followed is not None
    checks: list[tuple[str, Callable[[], Verdict]]] = [
        ("lifecycle.terminal_reached", lambda: _ends(ctx, followed, expected)),
        ("lifecycle.status_order", lambda: _order(ctx, followed)),
        ("lifecycle.task_schema", lambda: _schema(ctx, followed)),
        ("lifecycle.terminal_sticks", lambda: _sticks(ctx, followed)),
        ("lifecycle.completed", lambda: _completed(ctx, followed)),
    ]
    if expected == "success":
        checks.append(("lifecycle.expire_at", lambda: _expire_at(ctx, followed)))
    for name, check in checks:
        ctx.run(name, _with_curl(check, followed), source="docs", subject=task.purpose)


def _with_curl(check: Callable[[], Verdict], followed: Followed) -> Callable[[], Verdict]:
    return lambda: reproducible(check(), followed.curl)


def _ends(ctx: Context, followed: Followed, expected: str) -> Verdict:
    if followed.problem is not None:
        return Status.FAIL, followed.problem.message, [followed.problem]
    final = followed.final or {}
    status = final.get("status")
    if status not in ctx.facts.terminal:
        waited = ctx.pacing.poll_deadline
        return verdict([Finding(f"still {status!r} after {waited:g} s of polling")], "")
    if status != expected:
        detail = f": error {final.get('error')!r}" if status == "fail" else ""
        return verdict([Finding(f"ended in {status!r}, expected {expected!r}{detail}")], "")
    return Status.PASS, f"{followed.task_id} ended in {status} after {_reads(followed)}", []


def _order(ctx: Context, followed: Followed) -> Verdict:
    seen = _distinct([o.get("status") for o in followed.observations + followed.after])
    findings: list[Finding] = []
    known = ctx.facts.statuses
    for status in seen:
        if status not in known:
            findings.append(Finding(f"status {status!r} is not one of {', '.join(known)}"))
    path = [s for s in seen if s in known]
    if path and path[0] != ctx.facts.first and not ctx.facts.reachable(ctx.facts.first, path[0]):
        findings.append(Finding(f"first status {path[0]!r} cannot follow task creation"))
    for before, after in itertools.pairwise(path):
        if not ctx.facts.reachable(before, after):
            findings.append(Finding(f"{before!r} → {after!r} is not a documented move"))
    return verdict(findings, "observed " + " → ".join(str(s) for s in seen))


def _schema(ctx: Context, followed: Followed) -> Verdict:
    findings: list[Finding] = []
    for data in followed.observations + followed.after:
        for problem in ctx.facts.document.validate_component("Task", data):
            text = f"{data.get('status')!r} read: {problem}"
            if all(f.message != text for f in findings):
                findings.append(Finding(text))
    return verdict(findings, f"{_reads(followed)} valid Task objects")


def _sticks(ctx: Context, followed: Followed) -> Verdict:
    final = _terminal(ctx, followed)
    fields = ("status", "completed", "output", "error")
    findings = [
        Finding(
            f"re-read {i + 1} after the end changed {name}: {final.get(name)!r} → {r.get(name)!r}"
        )
        for i, r in enumerate(followed.after)
        for name in fields
        if r.get(name) != final.get(name)
    ]
    if not followed.after:
        raise Skip("the task could not be read again after it ended")
    return verdict(findings, f"{final['status']} held over {len(followed.after)} more reads")


def _completed(ctx: Context, followed: Followed) -> Verdict:
    final = _terminal(ctx, followed)
    findings: list[Finding] = []
    for data in followed.observations[:-1]:
        if data.get("status") not in ctx.facts.terminal and data.get("completed", 0) != 0:
            findings.append(Finding(f"completed={data['completed']!r} while {data['status']!r}"))
    completed, created = final.get("completed"), final.get("created")
    required = final.get("status") == "success"
    if completed is None and required:
        findings.append(Finding("a successful task has no completed time"))
    elif completed is not None and (not isinstance(completed, int) or completed <= 0):
        findings.append(Finding(f"completed={completed!r} once {final['status']!r}"))
    elif isinstance(completed, int) and isinstance(created, int) and completed < created:
        findings.append(Finding(f"completed={completed} is before created={created}"))
    return verdict(findings, f"0 while running, {completed} at the end")


def _expire_at(ctx: Context, followed: Followed) -> Verdict:
    final = _terminal(ctx, followed)
    if final.get("status") != "success":
        raise Skip("only successful tasks have outputs")
    ttl = TEMP_OUTPUT_TTL if final.get("storage") == "temp" else OUTPUT_TTL
    completed = final.get("completed")
    findings = [
        Finding(f"output {i}: expireAt={o.get('expireAt')!r}, expected completed + {ttl}")
        for i, o in enumerate(_outputs(final))
        if not isinstance(completed, int) or o.get("expireAt") != completed + ttl
    ]
    return verdict(findings, f"expireAt = completed + {ttl}")


def _terminal(ctx: Context, followed: Followed) -> dict[str, Any]:
    final = followed.final
    if final is None or final.get("status") not in ctx.facts.terminal:
        raise Skip("the task never ended")
    return final


def _outputs(data: dict[str, Any]) -> list[dict[str, Any]]:
    items = data.get("output")
    return [o for o in items if isinstance(o, dict)] if isinstance(items, list) else []


def _distinct(values: list[Any]) -> list[Any]:
    shown: list[Any] = []
    for value in values:
        if not shown or shown[-1] != value:
            shown.append(value)
    return shown


def _reads(followed: Followed) -> str:
    return f"{len(followed.observations) + len(followed.after)} reads"
