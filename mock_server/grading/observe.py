"""What the fake observed while a client ran one scenario: its journal, its delivery log, the
tasks, how the client ended. Grades read only this.

Times are the fake's clock; `Evidence.at` counts from the scenario's start. A scenario's clock may
run faster than the wall clock, and a client sleeps in its own (wall) seconds, so intervals are
compared with thresholds as `seconds()`: fake seconds divided by the speed.

    >>> offset(1.5), offset(604_801.25)
    ('+1.500s', '+7d+1.250s')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import IDEMPOTENCY_RETRY_AFTER
from ..delivery import Attempt
from ..journal import JournalEntry
from ..lifecycle import TERMINAL
from ..store import TaskRecord
from .scenarios import Scenario

__all__ = ["Evidence", "Execution", "Observation", "canonical", "describe", "offset", "task_of"]

_DAY = 86_400
#: A delivery that ended this close to the client's exit (fake seconds) was cut short by it.
_EXIT_MARGIN = 0.25
#: Retry-After of a 429 or 503 staged without one (`backend.staged_error`).
_DEFAULT_RETRY_AFTER = 1.0


def offset(seconds: float) -> str:
    """A time since the scenario started, as the reports print it."""
    days, rest = divmod(seconds, _DAY) if seconds >= _DAY else (0, seconds)
    return f"+{int(days)}d{rest:+.3f}s" if days else f"{rest:+.3f}s"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One observed fact: when (since the scenario started, on the fake's clock) and what."""

    at: float
    text: str

    def __str__(self) -> str:
        return f"{offset(self.at)}  {self.text}"


@dataclass(frozen=True, slots=True)
class Execution:
    """How the client under test ended."""

    exit_code: int | None  # None: killed at the timeout
    timed_out: bool
    wall: float  # seconds it ran
    stdout: str = ""  # the last lines
    stderr: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the grades look at, for one client in one scenario."""

    scenario: Scenario
    api_key: str
    started: float  # the fake's clock when the client started
    ended: float  # ... and when it had exited
    requests: tuple[JournalEntry, ...]
    deliveries: tuple[Attempt, ...]
    tasks: Mapping[str, TaskRecord]
    retry_after: Mapping[int, float]
    execution: Execution
    outputs: tuple[tuple[str, int], ...]  # (name, bytes) of each file in HIAPI_OUTPUT_DIR
    timeout: float

    # -- time ----------------------------------------------------------------------------------

    def seconds(self, fake_seconds: float) -> float:
        """An interval of the fake's clock in the client's own seconds."""
        return fake_seconds / self.scenario.speed

    def since(self, at: float) -> float:
        return at - self.started

    # -- requests ------------------------------------------------------------------------------

    @property
    def api(self) -> list[JournalEntry]:
        """Requests to the API itself (`/v1/...`), oldest first."""
        return [e for e in self.requests if e.path.startswith("/v1/")]

    @property
    def creates(self) -> list[JournalEntry]:
        return [e for e in self.requests if e.method == "POST" and e.path == "/v1/tasks"]

    def polls(self, task_id: str | None = None) -> list[JournalEntry]:
        """`GET /v1/tasks/{id}` requests (of one task, if given)."""
        return [
            e
            for e in self.requests
            if e.method == "GET"
            and e.path.startswith("/v1/tasks/")
            and (task_id is None or task_of(e) == task_id)
        ]

    def polled(self) -> list[str]:
        """Ids of the tasks polled, in the order first polled."""
        return list(dict.fromkeys(i for p in self.polls() if (i := task_of(p))))

    def downloads(self, task_id: str | None = None) -> list[JournalEntry]:
        """Requests for output files (`/files/{taskId}/...`)."""
        return [
            e
            for e in self.requests
            if e.path.startswith("/files/") and (task_id is None or task_of(e) == task_id)
        ]

    def created(self) -> list[str]:
        """Ids of the tasks the client's creates made, in order, each once."""
        ids = [e.task_id for e in self.creates if e.status == 200 and e.task_id]
        return list(dict.fromkeys(i for i in ids if i is not None))

    def seen(self, poll: JournalEntry) -> str | None:
        """The status a successful poll showed: the task's status when it arrived."""
        task = self.tasks.get(task_of(poll) or "")
        if poll.status != 200 or task is None:
            return None
        return task.timeline.status_at(poll.at)

    def first_terminal_poll(self, task_id: str) -> JournalEntry | None:
        return next((p for p in self.polls(task_id) if self.seen(p) in TERMINAL), None)

    def retry_after_of(self, entry: JournalEntry) -> float | None:
        """The `Retry-After` the answer to `entry` carried, if its status carries one."""
        if entry.status == 409:
            return float(IDEMPOTENCY_RETRY_AFTER)
        if entry.status in (429, 503):
            return self.retry_after.get(entry.status, _DEFAULT_RETRY_AFTER)
        return None

    def evidence(self, entry: JournalEntry, note: str = "") -> Evidence:
        return Evidence(self.since(entry.at), describe(entry, self) + (f": {note}" if note else ""))

    # -- callbacks -----------------------------------------------------------------------------

    def callback_requested(self) -> bool:
        """Whether any create asked for a callback."""
        bodies = [_json(e.body) for e in self.creates]
        return any(isinstance(body, dict) and "callback" in body for body in bodies)

    def live_deliveries(self) -> list[Attempt]:
        """Attempts made while the client ran, leaving out those its exit cut short."""
        found = []
        for attempt in self.deliveries:
            if attempt.sent_at is None or attempt.sent_at > self.ended:
                continue
            finished = attempt.sent_at + attempt.duration * self.scenario.speed
            if not attempt.ok and finished >= self.ended - _EXIT_MARGIN:
                continue
            found.append(attempt)
        return found

    def delivery_evidence(self, attempt: Attempt, note: str = "") -> Evidence:
        answer = f"answered {attempt.status}" if attempt.status is not None else attempt.error
        text = f"callback delivery (attempt {attempt.attempt}, copy {attempt.copy}): {answer}"
        at = attempt.sent_at if attempt.sent_at is not None else attempt.scheduled_at
        return Evidence(self.since(at), text + (f": {note}" if note else ""))


def task_of(entry: JournalEntry) -> str | None:
    """The task a request is about: the journal's note, else the id in its path (a request a
    staged fault answered never reached the route that notes it)."""
    if entry.task_id:
        return entry.task_id
    parts = entry.path.split("/")
    if entry.path.startswith("/v1/tasks/") and len(parts) == 4:
        return parts[3] or None
    if entry.path.startswith("/files/") and len(parts) >= 3:
        return parts[2] or None
    return None


def describe(entry: JournalEntry, observation: Observation) -> str:
    """`#3 GET /v1/tasks/tk-… -> 503 (Retry-After: 1)`: one request and its answer."""
    target = entry.path + (f"?{entry.query}" if entry.query else "")
    if entry.status == 0:
        answer = "no answer (connection dropped)"
    else:
        answer = str(entry.status)
        retry = observation.retry_after_of(entry)
        if retry is not None:
            answer += f" (Retry-After: {retry:g})"
    text = f"#{entry.seq} {entry.method} {target} -> {answer}"
    if entry.method == "POST":
        key = entry.headers.get("idempotency-key")
        text += f" [Idempotency-Key: {key[:40]}]" if key else " [no Idempotency-Key]"
    return text


def canonical(body: str) -> str:
    """A request body compared by meaning: JSON re-serialised with sorted keys, else as sent."""
    value = _json(body)
    if value is _NOT_JSON:
        return body
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_NOT_JSON: Any = object()


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON
