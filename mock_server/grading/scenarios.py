"""The scenarios a client is graded in, and the task every client is asked to run.

Each scenario stages one condition on a freshly reset fake through its Python API (rules, the
clock, a hook on task creation), runs at a clock speed of its own, and says how the client
should end: `success` (exit 0 with the output saved) or `failure` (a non-zero exit). Callback
scenarios give the client an address for its own receiver.

    >>> [s.name for s in select("happy_path,task_failed")]
    ['happy_path', 'task_failed']
    >>> select("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mock_server.grading.errors.GradingError: unknown scenario(s) nope; known: happy_path, ...
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..backend import Backend
from ..catalog import PROFILES
from ..clock import ManualClock
from ..config import OUTPUT_TTL
from ..delivery import CallbackFault, Fault
from ..randomness import MockRandom
from ..rules import Action, DropConnection, HttpFault, Match, Outcome, Rule, TaskTiming
from ..store import TaskRecord
from .errors import GradingError

__all__ = [
    "CREATE",
    "INPUT",
    "MODEL",
    "POLL",
    "PROMPT",
    "SCENARIOS",
    "Expect",
    "Hook",
    "Scenario",
    "Stage",
    "select",
    "task_body",
]

#: The task every client runs: the model page's premium product image, 1K, as PNG.
MODEL = "Nano-Banana-Pro"
PROMPT = "A luxury product photo of a banana on black marble"
INPUT: dict[str, Any] = {
    "prompt": PROMPT,
    "aspect_ratio": "1:1",
    "resolution": "1K",
    "output_format": "png",
}
#: The create, and a poll of one task, as rules match them. Matching the create on its model
#: makes the fake read the body before a staged fault answers, so the journal keeps it.
CREATE = Match(method="POST", path="/v1/tasks", model=MODEL)
POLL = Match(method="GET", path="/v1/tasks/*")

Expect: TypeAlias = Literal["success", "failure"]
Hook: TypeAlias = Callable[[TaskRecord], None]

#: Under a second of the fake's clock from creation to the end: a client polling from 1 s sees
#: it finished at its second look.
_QUICK = TaskTiming(queued=0.1, handling=0.5, archiving=0.1)


def task_body() -> str:
    """The create body a client is given (`HIAPI_TASK`), as compact JSON."""
    return json.dumps({"model": MODEL, "input": INPUT}, separators=(",", ":"))


@dataclass(slots=True)
class Stage:
    """What a scenario may set up on the fake before the client starts.

    `retry_after` records the `Retry-After` each staged status answers with, so the grades know
    what the client was asked to wait; `on_create` hooks run as each task is stored.
    """

    backend: Backend
    clock: ManualClock
    seed: int = 0
    retry_after: dict[int, float] = field(default_factory=dict)
    on_create: list[Hook] = field(default_factory=list)

    def rule(self, action: Action, match: Match | None = None, times: int | None = None) -> Rule:
        """Add a rule through the control plane's Python API."""
        return self.backend.rules.add(match, action, times)

    def fault(
        self,
        status: int,
        *,
        match: Match,
        times: int,
        retry_after: int | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> Rule:
        """Answer `times` matching requests with `status` in HiAPI's error envelope."""
        if retry_after is not None:
            self.retry_after[status] = float(retry_after)
        return self.rule(HttpFault(status, code, message, retry_after), match, times)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One named condition a client is run in."""

    name: str
    summary: str
    stage: Callable[[Stage], None]
    #: Fake seconds per wall second; thresholds compare the client's own seconds (fake ÷ speed).
    speed: float = 1.0
    expect: Expect = "success"
    #: Whether the client is given HIAPI_CALLBACK_PORT / HIAPI_CALLBACK_URL.
    callbacks: bool = False


# -- staging -------------------------------------------------------------------------------------


def _happy(stage: Stage) -> None:
    stage.rule(_QUICK)


def _slow(stage: Stage) -> None:
    # A live-like duration drawn from the catalogue's latency table (1K: median 17.5 s).
    model = stage.backend.catalog.get(MODEL)
    assert model is not None
    timing = PROFILES["realistic"].draw(model, model.with_defaults(INPUT), MockRandom(stage.seed))
    stage.rule(TaskTiming(timing.queued, timing.handling, timing.archiving))


def _failed(stage: Stage) -> None:
    stage.rule(_QUICK)
    stage.rule(Outcome("fail", "TASK_FAILED", "upstream rejected the prompt"))


def _rate_limited(stage: Stage) -> None:
    stage.rule(_QUICK)
    stage.fault(429, match=CREATE, times=1, retry_after=1, message="rate limit exceeded (staged)")


def _unavailable(stage: Stage) -> None:
    stage.rule(_QUICK)
    stage.fault(
        503, match=POLL, times=2, retry_after=1, code="MODEL_UNAVAILABLE",
        message="platform temporarily unavailable (staged)",
    )  # fmt: skip


def _dropped(stage: Stage) -> None:
    stage.rule(_QUICK)
    stage.rule(DropConnection(), CREATE, times=1)


def _invalid(stage: Stage) -> None:
    stage.rule(_QUICK)
    message = "input.prompt: refused by the model's input checks (staged)"
    stage.fault(400, match=CREATE, times=1, code="INVALID_REQUEST", message=message)


def _callback(fault: CallbackFault) -> Callable[[Stage], None]:
    def stage_it(stage: Stage) -> None:
        stage.rule(_QUICK)
        stage.rule(fault)

    return stage_it


def _expired(stage: Stage) -> None:
    stage.rule(_QUICK)

    def expire(task: TaskRecord) -> None:
        # Jump past expireAt while the task is being created: the first look at the finished
        # task shows an output link that already answers 404.
        stage.clock.set(task.timeline.finished + OUTPUT_TTL + 1.0)

    stage.on_create.append(expire)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("happy_path", "the task succeeds in under a second", _happy),
    Scenario("slow_task", "a live-like duration (about 18 s at 1K), clock x20", _slow, 20.0),
    Scenario("task_failed", "the task ends in fail with TASK_FAILED", _failed, expect="failure"),
    Scenario(
        "rate_limited_create", "the first create is answered 429, Retry-After: 1", _rate_limited
    ),
    Scenario("unavailable_polling", "two polls in a row answer 503, Retry-After: 1", _unavailable),
    Scenario("dropped_create", "the first create's connection drops unanswered", _dropped),
    Scenario(
        "invalid_input",
        "the first create is refused 400 INVALID_REQUEST",
        _invalid,
        expect="failure",
    ),
    Scenario(
        "callback_duplicated",
        "the callback is delivered 3 times at once",
        _callback(CallbackFault(Fault.DUPLICATE, copies=3)),
        callbacks=True,
    ),
    Scenario(
        "callback_delayed",
        "the callback arrives 10 s after the task ends",
        _callback(CallbackFault(Fault.DELAY, delay=10.0)),
        callbacks=True,
    ),
    Scenario(
        "callback_dropped",
        "the callback is never sent",
        _callback(CallbackFault(Fault.DROP)),
        callbacks=True,
    ),
    Scenario(
        "expired_output",
        "the output link has expired (404) when the task is seen done",
        _expired,
        expect="failure",
    ),
)


def select(names: str = "all") -> list[Scenario]:
    """The scenarios `names` lists (comma-separated, in the order given), or all of them."""
    if names.strip() in ("", "all"):
        return list(SCENARIOS)
    by_name = {s.name: s for s in SCENARIOS}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        known = ", ".join(by_name)
        raise GradingError(f"unknown scenario(s) {', '.join(unknown)}; known: {known}")
    return [by_name[n] for n in dict.fromkeys(wanted)]
