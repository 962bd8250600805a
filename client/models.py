"""Typed views of HiAPI's task objects, parsed defensively.

The parsers accept what the contract documents and tolerate what it leaves open: unknown fields
are ignored (and kept in `Task.raw`), an unknown status stays a plain string, optional fields may
be missing or `null`. What cannot be a task (no `taskId`, a list where an object belongs) raises
`MalformedResponseError` naming the field, never `KeyError` or `TypeError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import MalformedResponseError

__all__ = ["Task", "TaskError", "TaskOutput", "TaskPage", "TaskStatus", "is_terminal"]


class TaskStatus(StrEnum):
    """The documented statuses: `queued → handling → archiving → success | fail`.

    Members compare equal to the plain strings, so `task.status == TaskStatus.SUCCESS` works
    while `Task.status` itself stays a `str` (a status added later never breaks parsing).
    """

    QUEUED = "queued"
    HANDLING = "handling"
    ARCHIVING = "archiving"
    SUCCESS = "success"
    FAIL = "fail"


_TERMINAL = frozenset({TaskStatus.SUCCESS.value, TaskStatus.FAIL.value})


def is_terminal(status: str) -> bool:
    """Whether a task in `status` will never change again (`success` or `fail`)."""
    return status in _TERMINAL


@dataclass(slots=True, frozen=True)
class TaskOutput:
    """One output file: where to download it, its kind and when it expires (Unix seconds)."""

    url: str
    type: str = ""
    expire_at: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskOutput:
        url = data.get("url")
        if not isinstance(url, str) or not url:
            raise MalformedResponseError(
                "task.output[].url: expected a non-empty string", body=data
            )
        return cls(
            url=url, type=_opt_str(data.get("type")) or "", expire_at=_opt_int(data, "expireAt")
        )


@dataclass(slots=True, frozen=True)
class TaskError:
    """Why a task failed, e.g. `TaskError("TASK_FAILED", "upstream rejected the prompt")`."""

    code: str
    message: str

    @classmethod
    def from_wire(cls, value: object) -> TaskError | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            code = _opt_str(value.get("code")) or ""
            return cls(code=code, message=_opt_str(value.get("message")) or "")
        return cls(code="", message=str(value))


@dataclass(slots=True, frozen=True)
class Task:
    """A task as `GET /v1/tasks/{taskId}` returns it, and as a callback delivers it.

    `completed` is `None` until the task is terminal (the wire says `0`); `output` is empty
    unless the task succeeded; `error` is set only when it failed. `raw` is the object as
    received, unknown fields included.
    """

    task_id: str
    model: str
    status: str
    created: int | None = None
    completed: int | None = None
    output: tuple[TaskOutput, ...] = ()
    error: TaskError | None = None
    route: str | None = None
    storage: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        """`True` once the task is `success` or `fail`."""
        return is_terminal(self.status)

    @property
    def succeeded(self) -> bool:
        return self.status == TaskStatus.SUCCESS

    @property
    def failed(self) -> bool:
        return self.status == TaskStatus.FAIL

    @classmethod
    def from_dict(cls, data: object) -> Task:
        """Parse a task object (the envelope's `data`, or a callback body)."""
        if not isinstance(data, Mapping):
            raise MalformedResponseError("task: expected a JSON object", body=data)
        return cls(
            task_id=_required_str(data, "taskId"),
            model=_required_str(data, "model"),
            status=_required_str(data, "status"),
            created=_opt_int(data, "created"),
            completed=_opt_int(data, "completed") or None,
            output=_outputs(data.get("output")),
            error=TaskError.from_wire(data.get("error")),
            route=_opt_str(data.get("route")),
            storage=_opt_str(data.get("storage")),
            raw=dict(data),
        )


@dataclass(slots=True, frozen=True)
class TaskPage:
    """One page of `GET /v1/tasks`: the tasks (newest first), where it is and the total."""

    tasks: tuple[Task, ...]
    page: int
    size: int
    total: int | None = None

    @property
    def has_more(self) -> bool:
        """Whether a later page should hold more tasks, by `total` when it is known."""
        if self.total is not None:
            return self.page * self.size < self.total
        return len(self.tasks) >= self.size

    @classmethod
    def from_dict(cls, data: object, *, page: int, size: int) -> TaskPage:
        """Parse a page; the requested `page` and `size` stand in when the answer omits them."""
        if not isinstance(data, Mapping):
            raise MalformedResponseError("page: expected a JSON object", body=data)
        items = data.get("tasks")
        if not isinstance(items, list):
            raise MalformedResponseError("page.tasks: expected an array", body=data)
        return cls(
            tasks=tuple(Task.from_dict(item) for item in items),
            page=_opt_int(data, "page") or page,
            size=_opt_int(data, "size") or size,
            total=_opt_int(data, "total"),
        )


def _required_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedResponseError(
            f"task.{name}: expected a non-empty string, got {value!r}", body=data
        )
    return value


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(data: Mapping[str, Any], name: str) -> int | None:
    """An integer field; `None` when missing, `null` or not a finite number (bools excluded)."""
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def _outputs(value: object) -> tuple[TaskOutput, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedResponseError("task.output: expected an array", body=value)
    return tuple(_output(item) for item in value)


def _output(item: object) -> TaskOutput:
    if not isinstance(item, Mapping):
        raise MalformedResponseError("task.output[]: expected an object", body=item)
    return TaskOutput.from_dict(item)
