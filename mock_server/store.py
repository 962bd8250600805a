"""Where tasks and idempotency records live. No HTTP here.

`MemoryStore` is the default: plain dicts and lists, nothing survives a restart. Another store
(a durable one) implements the same `Store` Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .lifecycle import Timeline

__all__ = ["IdempotencyRecord", "MemoryStore", "OutputPlan", "Store", "TaskRecord"]


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """What a successful task's file will be: enough to render it again at any time."""

    width: int
    height: int
    fmt: str  # "png" or "jpeg": the file's real format
    ext: str  # the extension the model's `output_format` asked for ("png", "jpg", "jpeg")
    caption: str
    seed: int


@dataclass(slots=True)
class TaskRecord:
    """One task. Its status is `timeline.status_at(now)`, never stored."""

    task_id: str
    owner: str
    model: str  # as echoed on the wire: `base` or `base@route`
    route: str | None  # echoed only when given explicitly
    prompt: str
    timeline: Timeline
    error: tuple[str, str] | None  # (code, message) when the task is to fail
    output: OutputPlan | None
    callback_url: str | None
    base_url: str


@dataclass(slots=True)
class IdempotencyRecord:
    """A create seen with an `Idempotency-Key`; `task_id` is None while it is in flight."""

    fingerprint: str
    first_seen: float
    task_id: str | None = None


class Store(Protocol):
    def add(self, task: TaskRecord) -> None: ...
    def get(self, task_id: str) -> TaskRecord | None: ...
    def replace(self, task: TaskRecord) -> None: ...
    def count(self, owner: str) -> int: ...
    def newest(self, owner: str, offset: int, limit: int) -> list[TaskRecord]: ...
    def idempotency(self, owner: str, key: str) -> IdempotencyRecord | None: ...
    def remember(self, owner: str, key: str, record: IdempotencyRecord) -> None: ...
    def forget(self, owner: str, key: str) -> None: ...
    def reset(self) -> None: ...
    def __len__(self) -> int: ...


class MemoryStore:
    """Tasks in a dict, each key's task ids in creation order, idempotency records by key."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        self._by_owner: dict[str, list[str]] = {}
        self._idempotency: dict[tuple[str, str], IdempotencyRecord] = {}

    def add(self, task: TaskRecord) -> None:
        self._tasks[task.task_id] = task
        self._by_owner.setdefault(task.owner, []).append(task.task_id)

    def get(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    def replace(self, task: TaskRecord) -> None:
        self._tasks[task.task_id] = task

    def count(self, owner: str) -> int:
        return len(self._by_owner.get(owner, ()))

    def newest(self, owner: str, offset: int, limit: int) -> list[TaskRecord]:
        ids = self._by_owner.get(owner, [])
        end = len(ids) - offset
        return [self._tasks[i] for i in reversed(ids[max(end - limit, 0) : max(end, 0)])]

    def idempotency(self, owner: str, key: str) -> IdempotencyRecord | None:
        return self._idempotency.get((owner, key))

    def remember(self, owner: str, key: str, record: IdempotencyRecord) -> None:
        self._idempotency[(owner, key)] = record

    def forget(self, owner: str, key: str) -> None:
        self._idempotency.pop((owner, key), None)

    def reset(self) -> None:
        self._tasks.clear()
        self._by_owner.clear()
        self._idempotency.clear()

    def __len__(self) -> int:
        return len(self._tasks)
