"""Checks of how a client ended and how it dealt with callbacks and outputs.

Each takes an `Observation` and returns a `Finding`, or None when the scenario did not exercise
what it checks.
"""

from __future__ import annotations

from ..delivery import Attempt
from ..journal import JournalEntry
from .findings import Finding, Verdict
from .observe import Evidence, Observation, offset

__all__ = [
    "check_dedup",
    "check_expired",
    "check_outcome",
    "check_receiver",
    "check_reconcile",
]

#: Requests for an expired output after its first 404 that still count as a careful re-check.
_RECHECKS = 2
_TRACEBACK = "Traceback (most recent call last)"


def _named(obs: Observation, entry: JournalEntry) -> str:
    return f"#{entry.seq} {entry.method} {entry.path} at {offset(obs.since(entry.at))}"


def _exit_evidence(obs: Observation) -> list[Evidence]:
    run = obs.execution
    ended = "killed at the timeout" if run.timed_out else f"exited {run.exit_code}"
    evidence = [Evidence(obs.since(obs.ended), f"the client {ended} after {run.wall:.2f} s")]
    last = run.stderr.strip().splitlines()[-1:] or run.stdout.strip().splitlines()[-1:]
    if last:
        evidence.append(Evidence(obs.since(obs.ended), f"its last words: {last[0][:200]}"))
    return evidence


# -- the end -------------------------------------------------------------------------------------


def check_outcome(obs: Observation) -> Finding:
    """Exit 0 with the output saved when the task succeeds; non-zero when it cannot."""
    run, evidence = obs.execution, _exit_evidence(obs)
    if run.timed_out:
        recent = [obs.evidence(e) for e in obs.requests[-3:]]
        reason = f"did not finish within {obs.timeout:g} s and was killed"
        return Finding(Verdict.FAIL, reason, evidence + recent)
    code = run.exit_code
    saved = [(name, size) for name, size in obs.outputs if size > 0]
    if obs.scenario.expect == "failure":
        cause = _failure(obs)
        if code != 0:
            return Finding(Verdict.PASS, f"exited {code}: {cause}", evidence)
        return Finding(Verdict.FAIL, f"exited 0 although {cause}", evidence)
    if code == 0 and saved:
        name, size = saved[0]
        return Finding(Verdict.PASS, f"exited 0 with {name} ({size} bytes) saved", evidence)
    if code == 0:
        return Finding(Verdict.FAIL, "exited 0 but saved nothing in HIAPI_OUTPUT_DIR", evidence)
    creates = obs.creates
    if creates and all(e.status == 0 for e in creates):
        reason = (
            f"exited {code} after its only create got no answer; with an Idempotency-Key it "
            "could have retried safely"
        )
        return Finding(Verdict.WARN, reason, [obs.evidence(e) for e in creates] + evidence)
    return Finding(Verdict.FAIL, f"exited {code} although the task could succeed", evidence)


def _failure(obs: Observation) -> str:
    refused = [e for e in obs.creates if 400 <= e.status < 500 and e.status != 429]
    if refused:
        return f"its create was refused with {refused[0].status}"
    failed = [t for t in obs.tasks.values() if t.error is not None]
    if failed:
        return f"the task failed with {failed[0].error[0] if failed[0].error else 'an error'}"
    if any(d.status == 404 for d in obs.downloads()):
        return "the output had expired (404)"
    return "the task could not succeed"


# -- callbacks -----------------------------------------------------------------------------------


def _answer(attempt: Attempt) -> str:
    return f"answered {attempt.status}" if attempt.status is not None else str(attempt.error)


def check_receiver(obs: Observation) -> Finding | None:
    """Every delivery made while the client ran was answered 2xx, duplicates included."""
    if not obs.callback_requested():
        reason = (
            "not exercised: no create asked for a callback although HIAPI_CALLBACK_URL was given"
        )
        return Finding(Verdict.WARN, reason, [obs.evidence(e) for e in obs.creates])
    live = obs.live_deliveries()
    if not live:
        return None
    evidence = [obs.delivery_evidence(a) for a in live]
    bad = [a for a in live if not a.ok]
    if bad:
        first = bad[0]
        reason = (
            f"{len(bad)} of {len(live)} deliveries not acknowledged; first: copy {first.copy} "
            f"at {offset(obs.since(first.sent_at or first.scheduled_at))} {_answer(first)}"
        )
        return Finding(Verdict.FAIL, reason, evidence)
    return Finding(Verdict.PASS, f"answered 2xx to all {len(live)} deliveries", evidence)


def check_dedup(obs: Observation) -> Finding | None:
    """Several deliveries of one task lead to one handling of it (one download of its output)."""
    delivered = [a for a in obs.live_deliveries() if a.ok]
    if len(delivered) < 2:
        return None
    task_id = delivered[0].task_id
    downloads = [d for d in obs.downloads(task_id) if d.status == 200]
    evidence = sorted(
        [obs.delivery_evidence(a) for a in delivered] + [obs.evidence(d) for d in downloads],
        key=lambda e: e.at,
    )
    if len(downloads) > 1:
        reason = (
            f"handled task {task_id} {len(downloads)} times: {len(downloads)} downloads of its "
            f"output after {len(delivered)} deliveries"
        )
        return Finding(Verdict.FAIL, reason, evidence)
    reason = f"handled once: {len(downloads)} download(s) after {len(delivered)} deliveries"
    return Finding(Verdict.PASS, reason, evidence)


def check_reconcile(obs: Observation) -> Finding | None:
    """With the callback late or lost, the client still learns the end by polling."""
    made = obs.created()
    task = obs.tasks.get(made[0]) if made else None
    if task is None:
        return None
    ended = obs.since(task.timeline.finished)
    delivered = [a for a in obs.live_deliveries() if a.ok and a.task_id == task.task_id]
    first = obs.first_terminal_poll(task.task_id)
    evidence = [
        Evidence(ended, f"task {task.task_id} ended in {task.timeline.outcome}"),
        *(obs.evidence(p) for p in obs.polls(task.task_id)),
        *(obs.delivery_evidence(a) for a in obs.deliveries if a.task_id == task.task_id),
    ]
    evidence.sort(key=lambda e: e.at)
    if first is None:
        if delivered:
            reason = "learned the end only from the callback and never polled the task to it"
            return Finding(Verdict.WARN, reason, evidence)
        reason = (
            f"never saw the task's end (at {offset(ended)}) by polling: it waited for a "
            "callback that was late or never came"
        )
        return Finding(Verdict.FAIL, reason, evidence)
    seen_at = obs.since(first.at)
    if delivered and (delivered[0].sent_at or 0.0) <= first.at:
        late = obs.since(delivered[0].sent_at or 0.0)
        reason = (
            f"saw the end only at {offset(seen_at)}, after the late callback at {offset(late)} "
            f"({obs.seconds(late - ended):.2f} s after the task ended)"
        )
        return Finding(Verdict.WARN, reason, evidence)
    reason = (
        f"saw {obs.seen(first)} by polling at {offset(seen_at)}, "
        f"{obs.seconds(seen_at - ended):.2f} s after the task ended, without the callback"
    )
    return Finding(Verdict.PASS, reason, evidence)


# -- outputs -------------------------------------------------------------------------------------


def check_expired(obs: Observation) -> Finding | None:
    """An output link answering 404 is re-checked at most once or twice, never hammered, and
    the client reports it rather than crashing."""
    downloads = obs.downloads()
    code = obs.execution.exit_code
    if not downloads:
        if code not in (0, None):
            reason = f"did not download an output past its expireAt; exited {code}"
            return Finding(Verdict.PASS, reason, _exit_evidence(obs))
        return None
    gone = next((d for d in downloads if d.status == 404), None)
    if gone is None:
        return None
    after = [d for d in downloads if d.seq > gone.seq]
    refetched = any(gone.seq < p.seq < after[0].seq for p in obs.polls()) if after else False
    evidence = sorted(
        [obs.evidence(d) for d in downloads]
        + [obs.evidence(p) for p in obs.polls() if p.seq > gone.seq]
        + _exit_evidence(obs),
        key=lambda e: e.at,
    )
    if len(after) > _RECHECKS:
        reason = f"requested the expired link {len(after)} more times after {_named(obs, gone)}"
        return Finding(Verdict.FAIL, reason, evidence)
    if after and not refetched:
        reason = "requested the same expired link again without fetching the task for a new one"
        return Finding(Verdict.WARN, reason, evidence)
    if _TRACEBACK in obs.execution.stderr:
        return Finding(Verdict.WARN, "crashed with a traceback on the 404", evidence)
    how = " after fetching the task again" if any(p.seq > gone.seq for p in obs.polls()) else ""
    reason = f"stopped at the 404{how} and exited {code}"
    return Finding(Verdict.PASS, reason, evidence)
