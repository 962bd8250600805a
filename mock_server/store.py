"""Where tasks and idempotency records live. No HTTP here.

`MemoryStore` is the default: plain dicts and lists, nothing survives a restart. A durable
store (`mock_server.sqlite_store.SqliteStore`) implements the same `Store` Protocol, and also
offers a `Persistence`: the rest of the fake's state (rules, the clock, the callback outbox)
and what an earlier run left of it.

Writes are synchronous and cheap; `await store.flush()` returns once every write made so far
is durable (at once, for a store that keeps nothing), which is what "accepted" waits for.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .clock import ClockReading
from .delivery import Delivery, Outbox
from .lifecycle import Timeline

__all__ = [
    "IdempotencyRecord",
    "MemoryStore",
    "OutputPlan",
    "Persistence",
    "Saved",
    "Store",
    "TaskRecord",
]


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


@dataclass(frozen=True, slots=True)
class Saved:
    """What earlier runs left in a durable store, as it was when it was opened."""

    opened: int  # how often it was opened before (0: new)
    rules: Mapping[str, Any] | None  # {"next_id": N, "rules": [rule JSON, ...]}; None: never saved
    clock: ClockReading | None
    deliveries: tuple[Delivery, ...]  # callbacks owed: due, in retry, or not yet due


class Persistence(Outbox, Protocol):
    """The state a durable store keeps besides tasks. Writes return at once; `Store.flush`
    makes them durable."""

    @property
    def saved(self) -> Saved: ...
    def save_rules(self, snapshot: Mapping[str, Any]) -> None: ...
    def save_clock(self, reading: ClockReading) -> None: ...


class Store(Protocol):
    def add(self, task: TaskRecord) -> None: ...
    def get(self, task_id: str) -> TaskRecord | None: ...
    def replace(self, task: TaskRecord) -> None: ...
    def count(self, owner: str) -> int: ...
    def newest(self, owner: str, offset: int, limit: int) -> list[TaskRecord]: ...
    def idempotency(self, owner: str, key: str) -> IdempotencyRecord | None: ...
    def remember(self, owner: str, key: str, record: IdempotencyRecord) -> None: ...
    def forget(self, owner: str, key: str) -> None: ...
    def prune_idempotency(self, cutoff: float) -> int:
        """Forget records first seen at `cutoff` or before; how many went."""
        ...

    async def flush(self) -> None:
        """Return once every write made so far is durable."""
        ...

    @property
    def persistence(self) -> Persistence | None:
        """The rest of the fake's state, for a durable store; None: nothing survives."""
        ...

    def reset(self) -> None: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[TaskRecord]:
        """Every task, oldest first (a snapshot: safe while others add)."""
        ...


class MemoryStore:
    """Tasks in a dict, each key's task ids in creation order, idempotency records by key (and
    in the order first seen, so expired ones are pruned from the front)."""

    persistence: Persistence | None = None

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}
        self._by_owner: dict[str, list[str]] = {}
        self._idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self._seen: deque[tuple[float, str, str]] = deque()  # (first_seen, owner, key)
        self._pruning = threading.Lock()

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
        old = self._idempotency.get((owner, key))
        if old is None or old.first_seen != record.first_seen:
            self._seen.append((record.first_seen, owner, key))
        self._idempotency[(owner, key)] = record

    def forget(self, owner: str, key: str) -> None:
        self._idempotency.pop((owner, key), None)

    def prune_idempotency(self, cutoff: float) -> int:
        # The clock never goes back, so the front of `_seen` is the oldest.
        pruned = 0
        with self._pruning:
            while self._seen and self._seen[0][0] <= cutoff:
                first_seen, owner, key = self._seen.popleft()
                record = self._idempotency.get((owner, key))
                if record is not None and record.first_seen == first_seen:
                    self._idempotency.pop((owner, key), None)
                    pruned += 1
        return pruned

    async def flush(self) -> None:
        pass

    def reset(self) -> None:
        self._tasks.clear()
        self._by_owner.clear()
        self._idempotency.clear()
        self._seen.clear()

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(list(self._tasks.values()))
