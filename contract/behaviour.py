"""Request-level behaviour: error answers, idempotency, list paging and isolation between keys.

Every error answer must carry HiAPI's envelope (`code` equal to the HTTP status, `data: null`)
and, where the docs name one, its `error_code`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from . import tasks
from .context import Context, Skip, Verdict, verdict
from .results import Finding

__all__ = ["UNKNOWN_TASK", "envelope", "run"]

#: Well formed (`tk-hiapi-` + a ULID) and, being the smallest ULID, never issued.
UNKNOWN_TASK = "tk-hiapi-" + "0" * 26
_BAD_KEY = "invalid-hiapi-contract-key"


def run(ctx: Context) -> None:
    checks: list[tuple[str, str, Callable[[], Verdict]]] = [
        ("errors.bad_body_400", "docs", lambda: _bad_body(ctx)),
        ("errors.bad_key_401", "docs", lambda: _bad_key(ctx)),
        ("errors.unknown_task_404", "docs", lambda: _unknown_task(ctx)),
        ("errors.non_json_415", "example", lambda: _non_json(ctx)),
        ("idempotency.replay", "sdk", lambda: _replay(ctx)),
        ("idempotency.mismatch_422", "sdk", lambda: _mismatch(ctx)),
        ("idempotency.in_flight_409", "sdk", lambda: _in_flight(ctx)),
        ("listing.paging", "sdk", lambda: _paging(ctx)),
        ("listing.out_of_range_fallback", "docs", lambda: _fallback(ctx)),
        ("isolation.other_key_404", "docs", lambda: _isolation(ctx)),
    ]
    for name, source, check in checks:
        ctx.run(name, check, source=source)


def envelope(
    ctx: Context, response: httpx.Response, status: int, error_code: str | None = None
) -> list[Finding]:
    """What is wrong with `response` as HiAPI's error answer `status` (empty when right)."""

    def found(text: str) -> Finding:
        return ctx.finding(text, response)

    if response.status_code != status:
        return [found(f"answered {response.status_code}, expected {status}")]
    try:
        body = response.json()
    except ValueError:
        return [found(f"the {status} answer is not JSON")]
    findings = [
        found(f"{status}: {p}")
        for p in ctx.facts.document.validate_component("ErrorEnvelope", body)
    ]
    if isinstance(body, dict) and body.get("code") != status:
        findings.append(
            found(f"envelope code {body.get('code')!r} is not the HTTP status {status}")
        )
    if error_code is not None and isinstance(body, dict) and body.get("error_code") != error_code:
        findings.append(found(f"error_code {body.get('error_code')!r}, expected {error_code!r}"))
    return findings


# -- errors --------------------------------------------------------------------------------------


def _bad_body(ctx: Context) -> Verdict:
    response = ctx.http.post("/v1/tasks", json={"model": ctx.facts.model, "input": {}})
    return verdict(envelope(ctx, response, 400, "INVALID_REQUEST"), "400 INVALID_REQUEST")


def _bad_key(ctx: Context) -> Verdict:
    wrong = ctx.http.get("/v1/tasks", key=_BAD_KEY)
    missing = ctx.http.get("/v1/tasks", key=None)
    return verdict(
        envelope(ctx, wrong, 401) + envelope(ctx, missing, 401), "401 for a bad or missing key"
    )


def _unknown_task(ctx: Context) -> Verdict:
    response = ctx.http.get(f"/v1/tasks/{UNKNOWN_TASK}")
    return verdict(envelope(ctx, response, 404), "404 for an unknown task")


def _non_json(ctx: Context) -> Verdict:
    response = ctx.http.post(
        "/v1/tasks",
        content=b"model=Nano-Banana-Pro&prompt=banana",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return verdict(envelope(ctx, response, 415), "415 for a form-encoded body")


# -- idempotency ---------------------------------------------------------------------------------


def _replay(ctx: Context) -> Verdict:
    run = tasks.primary(ctx)
    response = ctx.http.post("/v1/tasks", json=run.body, headers=run.headers)
    findings: list[Finding] = []
    if response.status_code != 200:
        findings.append(ctx.finding(f"a replay answered {response.status_code}, not 200", response))
    elif _data(response).get("taskId") != run.task_id:
        findings.append(
            ctx.finding(
                f"a replay returned {_data(response).get('taskId')!r}, not {run.task_id}", response
            )
        )
    elif response.headers.get("idempotent-replay") != "true":
        shown = response.headers.get("idempotent-replay")
        findings.append(
            ctx.finding(f"a replay carries Idempotent-Replay: {shown!r}, not 'true'", response)
        )
    return verdict(
        findings, f"same key and body returned {run.task_id} with Idempotent-Replay: true"
    )


def _mismatch(ctx: Context) -> Verdict:
    run = tasks.primary(ctx)
    changed: dict[str, Any] = {**run.body, "input": {**run.body["input"]}}
    changed["input"]["prompt"] += " (changed)"
    response = ctx.http.post("/v1/tasks", json=changed, headers=run.headers)
    found = envelope(ctx, response, 422, "IDEMPOTENCY_KEY_MISMATCH")
    return verdict(found, "same key, other body: 422 IDEMPOTENCY_KEY_MISMATCH")


def _in_flight(ctx: Context) -> Verdict:
    """Two creates with one new key at once: the second may catch the first in flight (409)."""
    left = ctx.budget_left
    if left is not None and left <= 0:
        raise Skip(f"needs a task beyond --max-tasks {ctx.max_tasks}")
    ratio = sorted(ctx.facts.ratios)[0]
    body = ctx.body("in-flight", ratio=ratio)
    headers = {"Idempotency-Key": f"hiapi-contract-{uuid.uuid4()}"}
    ctx.http.throttle.wait(slots=2)  # both inside the rate limit, and at the same moment
    answers = _together(
        2, lambda: ctx.http.post("/v1/tasks", json=body, headers=headers, paced=False)
    )
    created = {_data(r).get("taskId") for r in answers if r.status_code == 200}
    ctx.spend.tasks_created += len(created)
    ctx.created += sorted(str(t) for t in created)
    refused = [r for r in answers if r.status_code == 409]
    if refused:
        found = envelope(ctx, refused[0], 409, "IDEMPOTENCY_KEY_PROCESSING")
        if "retry-after" not in refused[0].headers:
            found.append(ctx.finding("a 409 without Retry-After", refused[0]))
        return verdict(found, "409 IDEMPOTENCY_KEY_PROCESSING with Retry-After while in flight")
    odd = [r for r in answers if r.status_code != 200]
    if odd:
        return verdict(
            [ctx.finding(f"a concurrent create answered {odd[0].status_code}", odd[0])], ""
        )
    if len(created) > 1:
        return verdict(
            [ctx.finding(f"one Idempotency-Key made {len(created)} tasks", answers[1])], ""
        )
    raise Skip("not observed: the target finished the first create before the second arrived")


def _together(count: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """`count` calls of `send` released at the same moment from their own threads."""
    start = threading.Barrier(count)
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            start.wait(timeout=10)
            answers.append(send())
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    threads = [threading.Thread(target=one, name=f"contract-409-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return answers


# -- listing and isolation -----------------------------------------------------------------------


def _paging(ctx: Context) -> Verdict:
    tasks.primary(ctx)
    newest = ctx.created[-1] if ctx.created else None
    first = ctx.http.get("/v1/tasks", params={"page": 1, "size": 2})
    if first.status_code != 200:
        return verdict([ctx.finding(f"list answered {first.status_code}", first)], "")
    page = _data(first)
    listed = page.get("tasks")
    items: list[Any] = listed if isinstance(listed, list) else []
    findings = _page_shape(ctx, first, page, items, 1, 2)
    ids = [t.get("taskId") for t in items if isinstance(t, dict)]
    if newest is not None and ids[:1] != [newest]:
        findings.append(ctx.finding(f"the newest task {newest} is not listed first", first))
    created = [t.get("created") for t in items if isinstance(t, dict)]
    stamps = [c for c in created if isinstance(c, int)]
    if len(stamps) == len(created) and stamps != sorted(stamps, reverse=True):
        findings.append(ctx.finding(f"not newest first: created {created}", first))
    if isinstance(page.get("total"), int) and page["total"] >= 2 and len(ids) == 2:
        second = ctx.http.get("/v1/tasks", params={"page": 2, "size": 1})
        got = [t.get("taskId") for t in _data(second).get("tasks", []) if isinstance(t, dict)]
        if got != ids[1:2]:
            findings.append(ctx.finding(f"page 2 of size 1 is {got}, expected {ids[1:2]}", second))
    return verdict(findings, f"page 1 of size 2 of {page.get('total')} tasks, newest first")


def _page_shape(
    ctx: Context,
    response: httpx.Response,
    page: dict[str, Any],
    items: list[Any],
    number: int,
    size: int,
) -> list[Finding]:
    findings = [
        ctx.finding(f"data.{name} is {page.get(name)!r}, expected {want}", response)
        for name, want in (("page", number), ("size", size))
        if page.get(name) != want
    ]
    if len(items) > size:
        findings.append(ctx.finding(f"{len(items)} tasks on a page of size {size}", response))
    total = page.get("total")
    if not isinstance(total, int) or total < len(items) or total < 1:
        findings.append(ctx.finding(f"total {total!r} with {len(items)} tasks listed", response))
    return findings


def _fallback(ctx: Context) -> Verdict:
    findings: list[Finding] = []
    for params in ({"size": 0}, {"size": 101}, {"page": 0}):
        response = ctx.http.get("/v1/tasks", params=params)
        page = _data(response)
        if response.status_code != 200:
            findings.append(
                ctx.finding(f"{params} answered {response.status_code}, not 200", response)
            )
        elif not 1 <= int(page.get("size", 0)) <= 100 or int(page.get("page", 0)) < 1:
            findings.append(
                ctx.finding(
                    f"{params} gave page {page.get('page')!r}, size {page.get('size')!r}", response
                )
            )
    return verdict(findings, "out-of-range page and size fall back silently")


def _isolation(ctx: Context) -> Verdict:
    if len(ctx.http.keys) < 2:
        raise Skip("needs a second key (give --api-key twice)")
    run = tasks.primary(ctx)
    response = ctx.http.get(f"/v1/tasks/{run.task_id}", key=1)
    findings = envelope(ctx, response, 404)
    listed = ctx.http.get("/v1/tasks", params={"size": 100}, key=1)
    ids = [t.get("taskId") for t in _data(listed).get("tasks", []) if isinstance(t, dict)]
    if run.task_id in ids:
        findings.append(ctx.finding("another key's list shows the task", listed))
    return verdict(findings, "another key gets 404 and does not list the task")


def _data(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}
