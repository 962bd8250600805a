"""What goes on the wire: paths, bodies, headers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from .conftest import MakeApi
from .support import API_KEY, BASE, MODEL, PROMPT, TASK_ID, Script, created, ok, task_reply


def body(script: Script, index: int = 0) -> Any:
    return json.loads(script.requests[index].content)


def test_create_posts_model_and_input_with_the_key(make_api: MakeApi) -> None:
    script = Script(created())
    task_id = make_api(script, auto_idempotency_key=False).create(MODEL, PROMPT)
    request = script.requests[0]
    assert task_id == TASK_ID
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/v1/tasks")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert "idempotency-key" not in request.headers
    assert body(script) == {"model": MODEL, "input": PROMPT}


def test_callback_url_goes_at_the_top_level_never_in_input(make_api: MakeApi) -> None:
    script = Script(created(), created())
    api = make_api(script)
    api.create(MODEL, PROMPT, callback="https://me.test/hook")
    api.create(MODEL, PROMPT, callback={"url": "https://me.test/hook", "when": "final"})
    assert body(script, 0)["callback"] == {"url": "https://me.test/hook"}
    assert body(script, 1)["callback"] == {"url": "https://me.test/hook", "when": "final"}
    assert body(script, 0)["input"] == PROMPT


@pytest.mark.parametrize("route", ["", "default", "fast"])
def test_route_goes_at_the_top_level(make_api: MakeApi, route: str) -> None:
    script = Script(created())
    make_api(script).create(MODEL, PROMPT, route=route)
    assert body(script)["route"] == route
    assert "route" not in body(script)["input"]


def test_a_callback_inside_input_is_refused_before_sending(make_api: MakeApi) -> None:
    script = Script()
    with pytest.raises(ValueError, match="callback"):
        make_api(script).create(MODEL, {**PROMPT, "callback": {"url": "https://me.test"}})
    assert script.count == 0


def test_the_input_mapping_is_not_modified(make_api: MakeApi) -> None:
    given = dict(PROMPT)
    make_api(Script(created())).create(MODEL, given, callback="https://me.test/hook")
    assert given == PROMPT


def test_an_explicit_idempotency_key_is_sent(make_api: MakeApi) -> None:
    script = Script(created())
    make_api(script).create(MODEL, PROMPT, idempotency_key="order-42")
    assert script.header("idempotency-key") == ["order-42"]


def test_auto_idempotency_key_is_a_fresh_uuid_per_create(make_api: MakeApi) -> None:
    script = Script(created(), created())
    api = make_api(script)
    api.create(MODEL, PROMPT)
    api.create(MODEL, PROMPT)
    first, second = script.header("idempotency-key")
    assert first and second and first != second
    assert uuid.UUID(first).version == 4


@pytest.mark.parametrize("bad", ["", "k" * 256, "ключ", "a\nb"])
def test_an_idempotency_key_the_api_would_refuse_is_refused_here(
    make_api: MakeApi, bad: str
) -> None:
    script = Script()
    with pytest.raises(ValueError, match="idempotency_key"):
        make_api(script).create(MODEL, PROMPT, idempotency_key=bad)
    assert script.count == 0


def test_a_255_byte_idempotency_key_is_fine(make_api: MakeApi) -> None:
    script = Script(created())
    make_api(script).create(MODEL, PROMPT, idempotency_key="k" * 255)
    assert script.header("idempotency-key") == ["k" * 255]


@pytest.mark.parametrize(("model", "error"), [("", ValueError), (None, ValueError)])
def test_a_missing_model_is_refused(make_api: MakeApi, model: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="model"):
        make_api(Script()).create(model, PROMPT)


def test_input_must_be_a_mapping(make_api: MakeApi) -> None:
    with pytest.raises(TypeError, match="input"):
        make_api(Script()).create(MODEL, ["a banana"])  # type: ignore[arg-type]


def test_retrieve_gets_the_task_and_quotes_its_id(make_api: MakeApi) -> None:
    script = Script(task_reply(), task_reply())
    api = make_api(script)
    api.retrieve(TASK_ID)
    api.retrieve("../admin?x=1")
    first, second = script.requests
    assert (first.method, str(first.url)) == ("GET", f"{BASE}/v1/tasks/{TASK_ID}")
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    assert second.url.raw_path == b"/v1/tasks/..%2Fadmin%3Fx%3D1"


def test_retrieve_refuses_an_empty_id(make_api: MakeApi) -> None:
    with pytest.raises(ValueError, match="task_id"):
        make_api(Script()).retrieve("")


def test_list_sends_page_and_size(make_api: MakeApi) -> None:
    script = Script(ok({"tasks": [], "page": 2, "size": 50, "total": 0}))
    make_api(script).list(page=2, size=50)
    request = script.requests[0]
    assert request.method == "GET"
    assert request.url.path == "/v1/tasks"
    assert dict(request.url.params) == {"page": "2", "size": "50"}


@pytest.mark.parametrize(("page", "size"), [(0, 20), (1, 0), (1, 101), (-3, 20)])
def test_list_refuses_out_of_range_values(make_api: MakeApi, page: int, size: int) -> None:
    script = Script()
    with pytest.raises(ValueError):
        make_api(script).list(page=page, size=size)
    assert script.count == 0
