"""`list()` and `iter_tasks()`: pages, the end of the list, servers that never end."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import MakeApi
from .support import Script, ok, task_data


def ids(*names: str) -> list[dict[str, Any]]:
    return [task_data("success", task_id=f"tk-{name}") for name in names]


def page(tasks: list[dict[str, Any]], number: int, size: int, total: int | None) -> httpx.Response:
    data: dict[str, Any] = {"tasks": tasks, "page": number, "size": size}
    if total is not None:
        data["total"] = total
    return ok(data)


def pages_asked(script: Script) -> list[int]:
    return [int(request.url.params["page"]) for request in script.requests]


def test_list_parses_a_page(make_api: MakeApi) -> None:
    result = make_api(Script(page(ids("a", "b"), 1, 2, 5))).list(1, 2)
    assert [task.task_id for task in result.tasks] == ["tk-a", "tk-b"]
    assert (result.page, result.size, result.total, result.has_more) == (1, 2, 5, True)


def test_iter_tasks_walks_every_page_in_order(make_api: MakeApi) -> None:
    script = Script(
        page(ids("a", "b"), 1, 2, 5), page(ids("c", "d"), 2, 2, 5), page(ids("e"), 3, 2, 5)
    )
    tasks = make_api(script).tasks(size=2)
    assert [task.task_id for task in tasks] == ["tk-a", "tk-b", "tk-c", "tk-d", "tk-e"]
    assert pages_asked(script) == [1, 2, 3]
    assert {request.url.params["size"] for request in script.requests} == {"2"}


def test_iter_tasks_stops_on_an_empty_page(make_api: MakeApi) -> None:
    script = Script(page(ids("a", "b"), 1, 2, None), page([], 2, 2, None))
    assert len(make_api(script).tasks(size=2)) == 2
    assert pages_asked(script) == [1, 2]


def test_iter_tasks_stops_on_a_short_page_when_total_is_missing(make_api: MakeApi) -> None:
    script = Script(page(ids("a", "b"), 1, 2, None), page(ids("c"), 2, 2, None))
    assert len(make_api(script).tasks(size=2)) == 3
    assert script.count == 2


def test_iter_tasks_stops_when_the_server_ignores_page(make_api: MakeApi) -> None:
    def same_page(request: httpx.Request) -> httpx.Response:
        return page(ids("a", "b"), int(request.url.params["page"]), 2, 1_000_000)

    script = Script(*[same_page] * 5)
    assert [task.task_id for task in make_api(script).tasks(size=2)] == ["tk-a", "tk-b"]
    assert script.count == 2


def test_iter_tasks_stops_when_the_server_answers_another_page(make_api: MakeApi) -> None:
    script = Script(page(ids("a", "b"), 1, 2, 100), page(ids("c", "d"), 1, 2, 100))
    assert len(make_api(script).tasks(size=2)) == 4
    assert script.count == 2


def test_iter_tasks_is_bounded_by_max_pages(make_api: MakeApi) -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        return page(ids(f"{number}x", f"{number}y"), number, 2, 10**9)

    script = Script(*[endless] * 10)
    assert len(make_api(script).tasks(size=2, max_pages=4)) == 8
    assert pages_asked(script) == [1, 2, 3, 4]


def test_iter_tasks_skips_a_task_shifted_onto_the_next_page(make_api: MakeApi) -> None:
    script = Script(page(ids("b", "c"), 1, 2, 4), page(ids("c", "d"), 2, 2, 4))
    tasks = make_api(script).tasks(size=2)
    assert [task.task_id for task in tasks] == ["tk-b", "tk-c", "tk-d"]


@pytest.mark.parametrize("options", [{"size": 0}, {"size": 101}, {"max_pages": 0}])
def test_iter_tasks_checks_its_arguments_at_the_call(
    make_api: MakeApi, options: dict[str, int]
) -> None:
    api = make_api(Script())
    with pytest.raises(ValueError):
        api.client.iter_tasks(**options)
