"""Checks of the requests a client sent: shape, auth, waiting, polling and retrying creates.

Each takes an `Observation` and returns a `Finding`, or None when the scenario did not exercise
what it checks (no 429 to wait after, no second poll to time).
"""

from __future__ import annotations

import itertools
import json
from urllib.parse import parse_qsl

from ..journal import JournalEntry, mask_key
from ..lifecycle import TERMINAL
from ..spec import spec
from .findings import Finding, Verdict
from .observe import Evidence, Observation, canonical, offset

__all__ = [
    "check_auth",
    "check_cadence",
    "check_duplicates",
    "check_resubmits",
    "check_retry_after",
    "check_spec",
    "check_stops",
]

#: A client's sleep may end a hair early on a coarse timer (client seconds).
_TOLERANCE = 0.05
#: Mean poll interval in the client's seconds: fail below the first, warn below the second.
_POLL_FAIL, _POLL_WARN = 0.2, 1.0
#: The documented rate limit: 60 requests a minute per key.
_PER_MINUTE = 60
#: Answers after which the client cannot know whether its create made a task.
_LOST = frozenset({0, 500, 502, 504})
_CREATE_SCHEMA = "CreateTaskRequest"


def _named(obs: Observation, entry: JournalEntry) -> str:
    return f"#{entry.seq} {entry.method} {entry.path} at {offset(obs.since(entry.at))}"


# -- openapi.yaml --------------------------------------------------------------------------------


def check_spec(obs: Observation) -> Finding | None:
    """Every request (but output downloads) is an operation of openapi.yaml with valid
    parameters and, for a create, a JSON body valid against `CreateTaskRequest`."""
    checked = [e for e in obs.requests if not e.path.startswith("/files/")]
    if not checked:
        return None
    problems = [obs.evidence(e, p) for e in checked for p in request_problems(e)]
    if problems:
        return Finding(
            Verdict.FAIL, f"{len(problems)} problem(s), first: {problems[0].text}", problems
        )
    return Finding(Verdict.PASS, f"all {len(checked)} request(s) conform to openapi.yaml")


def request_problems(entry: JournalEntry) -> list[str]:
    """What in one journalled request disagrees with openapi.yaml."""
    document = spec()
    operation = document.operation(entry.method, entry.path)
    if operation is None:
        return [f"{entry.method} {entry.path} is not an operation of openapi.yaml"]
    values = _parameters(operation.template, entry)
    problems: list[str] = []
    for raw in operation.node.get("parameters", []):
        parameter = document.resolve(raw)
        value = values.get((parameter["in"], parameter["name"].lower()))
        if value is None:
            if parameter.get("required"):
                problems.append(f"{parameter['name']}: is required")
        elif "$ref" in raw:
            problems += document.validate_ref(raw["$ref"] + "/schema", value, at=parameter["name"])
    if "requestBody" in operation.node:
        problems += _body_problems(entry)
    return problems


def _parameters(template: str, entry: JournalEntry) -> dict[tuple[str, str], object]:
    values: dict[tuple[str, str], object] = {}
    for name, part in zip(template.split("/"), entry.path.split("/"), strict=False):
        if name.startswith("{"):
            values[("path", name.strip("{}").lower())] = part
    for name, raw in parse_qsl(entry.query, keep_blank_values=True):
        values[("query", name.lower())] = int(raw) if raw.lstrip("-").isdigit() else raw
    for name, raw in entry.headers.items():
        values[("header", name.lower())] = raw
    return values


def _body_problems(entry: JournalEntry) -> list[str]:
    media = entry.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return [f"Content-Type is {media or 'missing'}, not application/json"]
    try:
        body = json.loads(entry.body)
    except ValueError:
        return ["body: is not JSON"]
    # The model picks the schema (the document's discriminator), so problems name the field.
    mapping = spec().schema(_CREATE_SCHEMA)["discriminator"]["mapping"]
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str) and model in mapping:
        return spec().validate_ref(mapping[model], body)
    if isinstance(body, dict):
        return [f"model: must be one of {', '.join(mapping)}, not {str(model)[:60]!r}"]
    return ["body: must be a JSON object"]


# -- auth ----------------------------------------------------------------------------------------


def check_auth(obs: Observation) -> Finding | None:
    """Every /v1 request carries `Authorization: Bearer` with the key the client was given."""
    api = obs.api
    if not api:
        return None
    expected = mask_key(obs.api_key)
    bad = [
        obs.evidence(e, problem)
        for e in api
        if (problem := _auth_problem(e.headers.get("authorization"), e.api_key, expected))
    ]
    if bad:
        return Finding(Verdict.FAIL, f"{len(bad)} of {len(api)} API request(s): {bad[0]}", bad)
    return Finding(Verdict.PASS, f"all {len(api)} API request(s) sent Authorization: Bearer sk-…")


def _auth_problem(header: str | None, sent: str | None, expected: str) -> str:
    if not header:
        return "no Authorization header"
    if not header.lower().startswith("bearer "):
        return "Authorization is not a Bearer token"
    return "" if sent == expected else f"sent key {sent}, not the key given ({expected})"


# -- waiting -------------------------------------------------------------------------------------


def check_retry_after(obs: Observation) -> Finding | None:
    """After an answer with `Retry-After`, the next API request comes at least that late."""
    api = obs.api
    asked = [(i, e, wait) for i, e in enumerate(api) if (wait := obs.retry_after_of(e))]
    if not asked:
        return None
    early: list[Evidence] = []
    gaps: list[tuple[float, float]] = []
    first_early = ""
    for index, entry, wait in asked:
        if index + 1 == len(api):
            continue  # nothing came after it
        following = api[index + 1]
        gap = obs.seconds(following.at - entry.at)
        gaps.append((gap, wait))
        if gap < wait - _TOLERANCE:
            note = f"{gap:.3f} s after a {entry.status} asking Retry-After: {wait:g}"
            first_early = first_early or f"{_named(obs, following)} came {note}"
            early += [obs.evidence(entry), obs.evidence(following, note)]
    if early:
        return Finding(Verdict.FAIL, f"too soon: {first_early}", early)
    evidence = [obs.evidence(e) for _, e, _ in asked]
    if not gaps:
        return Finding(Verdict.PASS, "stopped after the answer with Retry-After", evidence)
    gap, wait = min(gaps)
    return Finding(
        Verdict.PASS,
        f"waited at least Retry-After after all {len(gaps)} such answer(s) "
        f"(shortest wait {gap:.2f} s for {wait:g} s)",
        evidence,
    )


# -- polling -------------------------------------------------------------------------------------


def check_cadence(obs: Observation) -> Finding | None:
    """Polls of a task come at sane intervals: not under a second on average, never over the
    documented 60 requests a minute. Counted until a poll shows the end; a poll made after a
    callback arrived is a reaction to it, not part of the cadence."""
    intervals: list[float] = []
    counted: list[JournalEntry] = []
    delivered = [a.sent_at for a in obs.live_deliveries() if a.sent_at is not None]
    for task_id in obs.polled():
        end = obs.first_terminal_poll(task_id)
        polls = [p for p in obs.polls(task_id) if end is None or p.seq <= end.seq]
        counted += polls
        intervals += [
            obs.seconds(b.at - a.at)
            for a, b in itertools.pairwise(polls)
            if not any(a.at < d <= b.at for d in delivered)  # a look prompted by a callback
        ]
    if not intervals:
        return None
    mean, shortest = sum(intervals) / len(intervals), min(intervals)
    busiest = _busiest_minute(sorted(obs.seconds(p.at) for p in counted))
    evidence = [obs.evidence(p) for p in sorted(counted, key=lambda p: p.seq)]
    summary = (
        f"{len(counted)} polls until the end was seen, {mean:.3f} s apart on average "
        f"(shortest {shortest:.3f} s)"
        + (f", {busiest} within one minute" if busiest > _PER_MINUTE else "")
    )
    if obs.scenario.speed != 1:
        summary += f" in client time (fake clock x{obs.scenario.speed:g})"
    if mean < _POLL_FAIL or busiest > _PER_MINUTE:
        return Finding(Verdict.FAIL, f"polled too fast: {summary}", evidence)
    if mean < _POLL_WARN - _TOLERANCE:
        return Finding(Verdict.WARN, f"polled fast: {summary}", evidence)
    return Finding(Verdict.PASS, summary, evidence)


def _busiest_minute(times: list[float]) -> int:
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 60.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def check_stops(obs: Observation) -> Finding | None:
    """Once a poll has shown the task terminal, at most one more poll of it."""
    worst: tuple[int, JournalEntry, list[JournalEntry]] | None = None
    for task_id in obs.tasks:
        first = obs.first_terminal_poll(task_id)
        if first is None:
            continue
        later = [p for p in obs.polls(task_id) if p.seq > first.seq]
        if worst is None or len(later) > worst[0]:
            worst = (len(later), first, later)
    if worst is None:
        return None
    extra, first, later = worst
    seen = obs.seen(first)
    assert seen in TERMINAL
    evidence = [obs.evidence(first, f"showed {seen}"), *map(obs.evidence, later)]
    if extra > 1:
        reason = f"{extra} more polls after {_named(obs, first)} showed {seen}"
        return Finding(Verdict.FAIL, reason, evidence)
    tail = "" if extra == 0 else " (one more poll)"
    return Finding(Verdict.PASS, f"stopped polling once a poll showed {seen}{tail}", evidence)


# -- creates -------------------------------------------------------------------------------------


def check_duplicates(obs: Observation) -> Finding | None:
    """One task per job: a create whose answer was lost is retried only with its
    Idempotency-Key, and no second task is made."""
    creates = obs.creates
    if not creates:
        return None
    unsafe: list[Evidence] = []
    replays = 0
    for index, entry in enumerate(creates):
        lost = [
            e
            for e in creates[:index]
            if e.status in _LOST and canonical(e.body) == canonical(entry.body)
        ]
        if not lost:
            continue
        key = entry.headers.get("idempotency-key")
        if key and key == lost[-1].headers.get("idempotency-key"):
            replays += 1
            continue
        why = "the same body again " + (
            "without an Idempotency-Key" if not key else "with another Idempotency-Key"
        )
        unsafe += [obs.evidence(lost[-1]), obs.evidence(entry, why)]
    made = obs.created()
    if len(made) > 1:
        evidence = [obs.evidence(e) for e in creates if e.status == 200] + unsafe
        return Finding(
            Verdict.FAIL, f"created {len(made)} tasks for one job: {', '.join(made)}", evidence
        )
    if unsafe:
        reason = f"re-sent a create whose answer was lost ({unsafe[1].text})"
        return Finding(Verdict.FAIL, reason, unsafe)
    evidence = [obs.evidence(e) for e in creates]
    if replays:
        reason = "retried the create whose answer was lost with the same Idempotency-Key"
        return Finding(Verdict.PASS, reason, evidence)
    return Finding(Verdict.PASS, f"{len(made)} task(s) from {len(creates)} create(s)", evidence)


def check_resubmits(obs: Observation) -> Finding | None:
    """A payload refused with 400 (or 422) is never sent again as it was."""
    refused = [e for e in obs.creates if e.status in (400, 422)]
    if not refused:
        return None
    again = [
        later
        for later in obs.creates
        if any(
            later.seq > first.seq and canonical(later.body) == canonical(first.body)
            for first in refused
        )
    ]
    first = refused[0]
    if again:
        evidence = [
            obs.evidence(first),
            *(obs.evidence(e, "the refused body again") for e in again),
        ]
        reason = (
            f"sent the payload refused at {_named(obs, first)} ({first.status}) "
            f"again {len(again)} time(s), first as #{again[0].seq}"
        )
        return Finding(Verdict.FAIL, reason, evidence)
    return Finding(
        Verdict.PASS,
        f"did not resend the payload refused with {first.status}",
        [obs.evidence(e) for e in refused],
    )
