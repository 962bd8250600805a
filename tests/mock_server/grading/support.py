"""Observations built by hand, so each grade's thresholds can be tested without a client."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mock_server.catalog import Timing
from mock_server.delivery import Attempt
from mock_server.grading import Execution, Observation, select
from mock_server.grading.scenarios import task_body
from mock_server.journal import JournalEntry, mask_key
from mock_server.lifecycle import plan
from mock_server.store import TaskRecord

KEY = "sk-grade-test-000001"
START = 1_767_225_600.0
TASK = "tk-hiapi-01KDX0000000000000000000AA"
BODY = task_body()
#: The task of `task()`: ends 0.7 s after START.
TIMING = Timing(0.1, 0.5, 0.1)


def entry(
    seq: int,
    at: float,
    method: str = "GET",
    path: str = f"/v1/tasks/{TASK}",
    status: int = 200,
    *,
    body: str = "",
    headers: Mapping[str, str] | None = None,
    key: str | None = KEY,
) -> JournalEntry:
    """One journalled request, `at` seconds after START."""
    shown: dict[str, str] = {}
    if key is not None:
        shown["authorization"] = f"Bearer {mask_key(key)}"
    if body:
        shown["content-type"] = "application/json"
    shown.update(headers or {})
    task_id = path.split("/")[3] if path.startswith("/v1/tasks/") else None
    if method == "POST" and status == 200:
        task_id = TASK
    return JournalEntry(
        seq, START + at, method, path, "", shown, body, status, task_id,
        mask_key(key) if key else None, 1.0,
    )  # fmt: skip


def create(
    seq: int, at: float, status: int = 200, *, key: str | None = None, body: str = BODY
) -> JournalEntry:
    headers = {"idempotency-key": key} if key else {}
    return entry(seq, at, "POST", "/v1/tasks", status, body=body, headers=headers)


def polls(first_seq: int, times: Sequence[float]) -> list[JournalEntry]:
    return [entry(first_seq + i, at) for i, at in enumerate(times)]


def task(error: tuple[str, str] | None = None, timing: Timing = TIMING) -> TaskRecord:
    return TaskRecord(
        TASK, KEY, "Nano-Banana-Pro", None, "a banana", plan(START, timing, error=error),
        error, None, None, "http://127.0.0.1:1",
    )  # fmt: skip


def delivery(at: float, status: int | None = 200, copy: int = 1) -> Attempt:
    error = None if status is not None else "ConnectError: refused"
    return Attempt(
        TASK, "http://127.0.0.1:2/hiapi/callback", 1, copy, START + at, START + at, {}, status,
        error, 0.001, "duplicate",
    )  # fmt: skip


def observation(
    *requests: JournalEntry,
    scenario: str = "happy_path",
    speed: float | None = None,
    retry_after: Mapping[int, float] | None = None,
    deliveries: Sequence[Attempt] = (),
    exit_code: int | None = 0,
    outputs: Sequence[tuple[str, int]] = (("out.png", 100),),
    stderr: str = "",
    ended: float = 30.0,
    timing: Timing = TIMING,
) -> Observation:
    chosen = select(scenario)[0]
    if speed is not None:
        chosen = dataclasses.replace(chosen, speed=speed)
    return Observation(
        scenario=chosen,
        api_key=KEY,
        started=START,
        ended=START + ended,
        requests=tuple(requests),
        deliveries=tuple(deliveries),
        tasks={TASK: task(timing=timing)},
        retry_after=dict(retry_after or {}),
        execution=Execution(exit_code, exit_code is None, 1.0, "", stderr),
        outputs=tuple(outputs),
        timeout=20.0,
    )


def body_with(**changes: Any) -> str:
    value = json.loads(BODY)
    value.update(changes)
    return json.dumps(value)
