"""Parsing tasks and pages defensively."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client import MalformedResponseError, Task, TaskError, TaskOutput, TaskPage, TaskStatus
from client import is_terminal as status_is_terminal

from .support import MODEL, TASK_ID, task_data


def test_a_successful_task_is_mapped_field_by_field() -> None:
    task = Task.from_dict(task_data("success", route="default", storage="temp"))
    assert task == Task(
        task_id=TASK_ID,
        model=MODEL,
        status="success",
        created=1_795_619_433,
        completed=1_795_619_450,
        output=(TaskOutput("https://cdn.test/out/0.png", "image", 1_796_224_250),),
        error=None,
        route="default",
        storage="temp",
    )
    assert task.is_terminal and task.succeeded and not task.failed


def test_completed_zero_means_not_completed() -> None:
    task = Task.from_dict(task_data("handling"))
    assert task.completed is None
    assert task.created == 1_795_619_433
    assert not task.is_terminal


def test_the_documented_failed_task_with_only_four_fields() -> None:
    data = {
        "taskId": TASK_ID,
        "model": MODEL,
        "status": "fail",
        "error": {"code": "TASK_FAILED", "message": "upstream rejected the prompt"},
    }
    task = Task.from_dict(data)
    assert task.error == TaskError("TASK_FAILED", "upstream rejected the prompt")
    assert (task.created, task.completed, task.output) == (None, None, ())
    assert task.failed


def test_unknown_fields_are_ignored_and_kept_in_raw() -> None:
    data = task_data("queued", progress=0.4, cost={"credits": 3})
    task = Task.from_dict(data)
    assert task.raw["progress"] == 0.4
    assert task.raw == data
    assert task == Task.from_dict(task_data("queued"))  # raw takes no part in equality


def test_an_unknown_status_stays_a_string() -> None:
    task = Task.from_dict(task_data("moderating"))
    assert task.status == "moderating"
    assert not task.is_terminal


@pytest.mark.parametrize(
    ("field", "value"),
    [("created", "yesterday"), ("created", True), ("created", float("nan")), ("route", 5)],
)
def test_optional_fields_of_the_wrong_type_are_dropped(field: str, value: object) -> None:
    extra: dict[str, Any] = {field: value}
    task = Task.from_dict(task_data("queued", **extra))
    assert getattr(task, field) is None
    assert task.raw[field] is value


def test_a_float_timestamp_is_truncated() -> None:
    assert Task.from_dict(task_data("queued", created=17.9)).created == 17


def test_an_error_that_is_not_an_object_keeps_its_text() -> None:
    task = Task.from_dict(task_data("fail", error="boom"))
    assert task.error == TaskError("", "boom")


def test_an_output_without_expiry_or_type_is_tolerated() -> None:
    task = Task.from_dict(task_data("success", output=[{"url": "https://cdn.test/a.mp4"}]))
    assert task.output == (TaskOutput("https://cdn.test/a.mp4", "", None),)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "task"),
        ("tk", "task"),
        ({"model": MODEL, "status": "queued"}, "taskId"),
        (task_data(taskId=""), "taskId"),
        ({**task_data(), "status": None}, "status"),
        (task_data(model=["a"]), "model"),
        (task_data("success", output={"url": "x"}), "output"),
        (task_data("success", output=["https://cdn.test/0.png"]), "output"),
        (task_data("success", output=[{"type": "image"}]), "url"),
    ],
)
def test_what_cannot_be_a_task_is_malformed(data: Any, field: str) -> None:
    with pytest.raises(MalformedResponseError, match=field):
        Task.from_dict(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
FIELDS = ["taskId", "model", "status", "created", "completed", "output", "error", "route"]


@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), JSON, max_size=9))
def test_parsing_anything_gives_a_task_or_a_malformed_error(data: dict[str, Any]) -> None:
    try:
        task = Task.from_dict(data)
    except MalformedResponseError:
        return
    assert task.task_id == data["taskId"]
    assert task.completed is None or task.completed != 0


def test_status_constants_are_plain_strings() -> None:
    plain: str = "success"
    assert plain == TaskStatus.SUCCESS
    assert TaskStatus(plain) is TaskStatus.SUCCESS
    assert [status.value for status in TaskStatus] == [
        "queued",
        "handling",
        "archiving",
        "success",
        "fail",
    ]
    assert [status_is_terminal(status) for status in TaskStatus] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert not status_is_terminal("paused")


def test_models_are_frozen_slotted_and_hashable() -> None:
    task = Task.from_dict(task_data("success"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.status = "fail"  # type: ignore[misc]
    assert not hasattr(task, "__dict__")
    assert len({task, Task.from_dict(task_data("success"))}) == 1


def test_a_page_with_and_without_total() -> None:
    tasks = [task_data(task_id="tk-a"), task_data(task_id="tk-b")]
    known = TaskPage.from_dict({"tasks": tasks, "page": 2, "size": 2, "total": 4}, page=2, size=2)
    assert (known.page, known.total, known.has_more) == (2, 4, False)
    bare = TaskPage.from_dict({"tasks": tasks}, page=3, size=2)
    assert (bare.page, bare.size, bare.total, bare.has_more) == (3, 2, None, True)


@pytest.mark.parametrize("data", [None, [], {"tasks": None}, {"tasks": {"a": 1}}])
def test_a_page_without_a_task_array_is_malformed(data: Any) -> None:
    with pytest.raises(MalformedResponseError):
        TaskPage.from_dict(data, page=1, size=20)
