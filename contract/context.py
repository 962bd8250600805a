"""What every check group shares: the target, the HTTP client, the task budget, the tasks made.

A check is a function returning a `Verdict`; `Context.run` times it, turns `Skip` and transport
errors into results, and reports each result the moment it is known. Tasks the harness creates
go through `Context.create`, which honours `--max-tasks`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from mock_server.receiver import CallbackReceiver

from .errors import Skip
from .facts import Facts
from .http import Http
from .results import CheckResult, Deviation, Finding, Spend, Status

__all__ = [
    "Context",
    "Followed",
    "Pacing",
    "Skip",
    "Target",
    "TaskRun",
    "Verdict",
    "reproducible",
    "verdict",
]

Verdict = tuple[Status, str, list[Finding]]
_STICKY_READS = 3


def reproducible(result: Verdict, curl: str | None) -> Verdict:
    """`result` with `curl` as the reproduction of every finding that has none of its own."""
    for finding in result[2]:
        finding.curl = finding.curl or curl
    return result


def verdict(findings: list[Finding], passed: str) -> Verdict:
    """Pass with `passed` when nothing was found, else fail with the first finding as message."""
    if not findings:
        return Status.PASS, passed, []
    more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
    return Status.FAIL, findings[0].message + more, findings


@dataclass(frozen=True, slots=True)
class Target:
    """Where the checks go and what the harness knows about it."""

    base_url: str
    keys: tuple[str, ...]
    webhook_secret: str | None = None
    live: bool = False
    #: It exposes hiapi-mock's `/_mock/` control API.
    control: bool = False
    in_process: bool = False

    @property
    def local(self) -> bool:
        host = (urlsplit(self.base_url).hostname or "").lower()
        return host in {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, slots=True)
class Pacing:
    """How often to poll and how long to wait, by kind of target. Every wait is bounded."""

    poll_interval: float
    poll_deadline: float
    callback_wait: float
    retry_wait: float

    @classmethod
    def for_target(cls, target: Target, retry_wait: float | None = None) -> Pacing:
        if target.local:
            pacing = cls(0.02, 30.0, 10.0, 10.0 if target.control else 5.0)
        elif target.live:
            pacing = cls(3.0, 300.0, 60.0, 90.0)
        else:
            pacing = cls(0.5, 120.0, 30.0, 90.0)
        return pacing if retry_wait is None else replace(pacing, retry_wait=retry_wait)


@dataclass(slots=True)
class Followed:
    """A task polled until it ended (or the deadline passed), then read a few more times."""

    task_id: str
    observations: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)
    problem: Finding | None = None
    #: The read, as a curl command: what reproduces any finding about the task's states.
    curl: str | None = None

    @property
    def final(self) -> dict[str, Any] | None:
        return self.observations[-1] if self.observations else None


@dataclass(slots=True)
class TaskRun:
    """A task the harness created on purpose, and what it saw of it."""

    purpose: str
    body: dict[str, Any]
    response: httpx.Response
    task_id: str | None
    headers: dict[str, str] = field(default_factory=dict)
    callback_path: str | None = None
    followed: Followed | None = None


class Context:
    """One run's shared state; check groups receive it and call `run` for each check."""

    def __init__(
        self,
        target: Target,
        http: Http,
        facts: Facts,
        *,
        seed: int,
        max_tasks: int | None,
        pacing: Pacing,
        emit: Callable[[CheckResult], None],
        receiver: CallbackReceiver | None = None,
        callback_base: str | None = None,
    ) -> None:
        self.target = target
        self.http = http
        self.facts = facts
        self.seed = seed
        self.max_tasks = max_tasks
        self.pacing = pacing
        self.receiver = receiver
        self.callback_base = callback_base.rstrip("/") if callback_base else None
        self.results: list[CheckResult] = []
        self.deviations: list[Deviation] = []
        self.notes: list[str] = []
        self.tasks: dict[str, TaskRun] = {}
        #: Ids of the tasks the harness created, oldest first.
        self.created: list[str] = []
        self._emit = emit
        self._pause = threading.Event()

    @property
    def spend(self) -> Spend:
        return self.http.spend

    # -- results --------------------------------------------------------------------------------

    def run(
        self, name: str, check: Callable[[], Verdict], *, source: str = "", subject: str = ""
    ) -> CheckResult:
        """Run one check and report its result at once."""
        started = time.perf_counter()
        try:
            status, message, findings = check()
        except Skip as skip:
            status, message, findings = Status.SKIP, skip.reason, []
        except httpx.HTTPError as exc:
            request = _request_of(exc)
            shown = self.http.curl(request) if request is not None else None
            status, message = Status.FAIL, f"request failed: {type(exc).__name__}: {exc}"
            findings = [Finding(message, shown)]
        result = CheckResult(
            name, status, message, subject, findings, time.perf_counter() - started, source
        )
        self.record(result)
        return result

    def record(self, result: CheckResult) -> None:
        self.results.append(result)
        self._emit(result)

    def finding(self, message: str, response: httpx.Response | None = None) -> Finding:
        return Finding(message, self.http.curl(response.request) if response is not None else None)

    def pause(self, seconds: float) -> None:
        """Bounded wait between polls of the target."""
        self._pause.wait(seconds)

    # -- tasks ----------------------------------------------------------------------------------

    @property
    def budget_left(self) -> int | None:
        if self.max_tasks is None:
            return None
        return max(self.max_tasks - self.spend.tasks_created, 0)

    def callback_url(self, path: str) -> str | None:
        return f"{self.callback_base}{path}" if self.callback_base else None

    def body(
        self,
        purpose: str,
        *,
        ratio: str,
        output_format: str = "png",
        prompt_extra: str = "",
        callback_path: str | None = None,
    ) -> dict[str, Any]:
        """A Nano-Banana-Pro create body for one of the harness's own tasks."""
        prompt = f"hiapi-contract {purpose} check, seed {self.seed}{prompt_extra}"
        body: dict[str, Any] = {
            "model": self.facts.model,
            "input": {
                "prompt": prompt,
                "aspect_ratio": ratio,
                "resolution": "1K",
                "output_format": output_format,
            },
        }
        url = self.callback_url(callback_path) if callback_path else None
        if url is not None:
            body["callback"] = {"url": url}
        return body

    def create(
        self,
        purpose: str,
        body: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        callback_path: str | None = None,
    ) -> TaskRun:
        """Create a task (counted against the budget); `Skip` when the budget is spent."""
        left = self.budget_left
        if left is not None and left <= 0:
            raise Skip(f"needs a task beyond --max-tasks {self.max_tasks}")
        response = self.http.post("/v1/tasks", json=body, headers=headers)
        task_id = _task_id(response)
        if task_id is not None and response.headers.get("idempotent-replay") != "true":
            self.spend.tasks_created += 1
            self.created.append(task_id)
        run = TaskRun(purpose, body, response, task_id, dict(headers or {}), callback_path)
        self.tasks[purpose] = run
        return run

    def follow(self, task_id: str) -> Followed:
        """Poll the task until it is terminal (bounded by the pacing), then read it again."""
        followed = Followed(task_id)
        interval, deadline = self.pacing.poll_interval, self.pacing.poll_deadline
        ends = time.monotonic() + deadline
        for _ in range(int(deadline / interval) + 2):
            data = self._read(followed)
            if data is None:
                return followed
            followed.observations.append(data)
            if data.get("status") in self.facts.terminal or time.monotonic() >= ends:
                break
            self.pause(interval)
        if followed.final is None or followed.final.get("status") not in self.facts.terminal:
            return followed
        for _ in range(_STICKY_READS):
            self.pause(interval)
            data = self._read(followed)
            if data is None:
                break
            followed.after.append(data)
        return followed

    def _read(self, followed: Followed) -> dict[str, Any] | None:
        response = self.http.get(f"/v1/tasks/{followed.task_id}")
        followed.curl = followed.curl or self.http.curl(response.request)
        data = _data(response)
        if response.status_code != 200 or not isinstance(data, dict):
            followed.problem = self.finding(
                f"GET /v1/tasks/{followed.task_id} answered {response.status_code}, "
                "not 200 with the task",
                response,
            )
            return None
        return data


def _task_id(response: httpx.Response) -> str | None:
    data = _data(response)
    if response.status_code != 200 or not isinstance(data, dict):
        return None
    task_id = data.get("taskId")
    return task_id if isinstance(task_id, str) else None


def _data(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("data") if isinstance(body, dict) else None


def _request_of(exc: httpx.HTTPError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:
        return None
