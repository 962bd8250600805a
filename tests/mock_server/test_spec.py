"""Tests for mock_server.spec and openapi.yaml itself: a valid document, every element labelled
with its source, and validation messages a client can act on."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from mock_server.spec import Spec, spec, spec_path

SOURCES = {"docs", "sdk", "example", "assumed"}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
INPUT = "NanoBananaProInput"
TASK_ID = "tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR"
RATE_HEADERS = {
    "X-RateLimit-Limit": "60",
    "X-RateLimit-Remaining": "59",
    "X-RateLimit-Reset": "1767225660",
}
LONG = "x" * 10_000


def load() -> dict[str, Any]:
    with spec_path().open(encoding="utf-8") as fh:
        document: dict[str, Any] = yaml.safe_load(fh)
    return document


def input_problems(value: Mapping[str, Any]) -> list[str]:
    return spec().validate_component(INPUT, {"prompt": "a banana", **value}, at="input")


# --- the document -----------------------------------------------------------------------


def test_spec_path_points_at_the_projects_openapi_yaml() -> None:
    path = spec_path()
    assert path.name == "openapi.yaml"
    assert path.is_file()
    assert path.read_text(encoding="utf-8").startswith("openapi: 3.1")


def test_openapi_yaml_is_a_valid_openapi_document() -> None:
    validate(load())


def test_spec_loads_the_same_document() -> None:
    assert spec().document == load()
    assert spec() is spec()  # loaded once


# --- x-source on every element ----------------------------------------------------------


def _response(where: str, node: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if "$ref" in node:  # labelled where it is defined, under components
        return
    yield where, node
    for name, header in node.get("headers", {}).items():
        if "$ref" not in header:
            yield f"{where}/headers/{name}", header


def _parameters(where: str, node: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, parameter in enumerate(node.get("parameters", [])):
        if "$ref" not in parameter:
            yield f"{where}/parameters/{index}", parameter


def _path_item(where: str, item: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield from _parameters(where, item)
    for method, operation in item.items():
        if method in METHODS:
            yield from _operation(f"{where}/{method}", operation)


def _operation(where: str, node: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield where, node
    yield from _parameters(where, node)
    for status, response in node.get("responses", {}).items():
        yield from _response(f"{where}/responses/{status}", response)
    for name, callback in node.get("callbacks", {}).items():
        for expression, item in callback.items():
            yield from _path_item(f"{where}/callbacks/{name}/{expression}", item)


def labelled_elements(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every operation, parameter, response, header, component schema, security scheme and
    callback operation of `document`, as (where, node)."""
    for template, item in document.get("paths", {}).items():
        yield from _path_item(f"paths/{template}", item)
    components = document.get("components", {})
    for kind in ("schemas", "parameters", "headers", "securitySchemes"):
        for name, node in components.get(kind, {}).items():
            yield f"components/{kind}/{name}", node
    for name, node in components.get("responses", {}).items():
        yield from _response(f"components/responses/{name}", node)
    for name, callback in components.get("callbacks", {}).items():
        for expression, item in callback.items():
            yield from _path_item(f"components/callbacks/{name}/{expression}", item)


def unlabelled(document: Mapping[str, Any]) -> list[str]:
    return [
        f"{where}: x-source={node.get('x-source')!r}"
        for where, node in labelled_elements(document)
        if node.get("x-source") not in SOURCES
    ]


def every_x_source(node: Any) -> Iterator[Any]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "x-source":
                yield value
            else:
                yield from every_x_source(value)
    elif isinstance(node, list):
        for item in node:
            yield from every_x_source(item)


def test_every_element_carries_x_source() -> None:
    assert unlabelled(load()) == []


def test_the_walk_reaches_every_kind_of_element() -> None:
    found = [where for where, _ in labelled_elements(load())]
    operations = [w for w in found if w.startswith("paths/") and w.rsplit("/", 1)[-1] in METHODS]
    assert {"paths//v1/tasks/post", "paths//v1/tasks/get", "paths//v1/tasks/{taskId}/get"} <= set(
        operations
    )
    callback_operations = [w for w in operations if "/callbacks/" in w]
    assert callback_operations == [
        "paths//v1/tasks/post/callbacks/taskFinished/{$request.body#/callback/url}/post"
    ]
    callback = callback_operations[0]
    assert f"{callback}/parameters/0" in found  # X-HiAPI-Timestamp
    assert f"{callback}/responses/200" in found
    assert "components/securitySchemes/bearerAuth" in found
    assert "components/headers/X-RateLimit-Reset" in found
    assert "components/parameters/IdempotencyKey" in found
    assert "components/responses/RateLimited" in found
    assert "components/schemas/TaskStatus" in found
    assert "paths//v1/tasks/{taskId}/get/responses/200" in found


def test_a_missing_or_unknown_x_source_is_caught() -> None:
    document = load()
    del document["components"]["securitySchemes"]["bearerAuth"]["x-source"]
    callback = document["paths"]["/v1/tasks"]["post"]["callbacks"]["taskFinished"]
    callback["{$request.body#/callback/url}"]["post"]["x-source"] = "rumour"
    assert unlabelled(document) == [
        "paths//v1/tasks/post/callbacks/taskFinished/{$request.body#/callback/url}/post: "
        "x-source='rumour'",
        "components/securitySchemes/bearerAuth: x-source=None",
    ]


def test_every_x_source_anywhere_has_a_known_value() -> None:
    values = list(every_x_source(load()))
    assert len(values) > 50
    assert set(values) <= SOURCES


# --- validation messages ----------------------------------------------------------------


def test_a_valid_input_has_no_problems() -> None:
    assert input_problems({"aspect_ratio": "16:9", "resolution": "2K", "image_input": []}) == []


def test_prompt_too_long_names_the_field_and_the_limit() -> None:
    problems = input_problems({"prompt": "a" * 10_001})
    assert len(problems) == 1
    assert problems[0].startswith("input.prompt:")
    assert "10000" in problems[0]
    assert input_problems({"prompt": "a" * 10_000}) == []


def test_empty_prompt_is_refused() -> None:
    assert input_problems({"prompt": ""}) == ["input.prompt: must be at least 1 character long"]


def test_missing_prompt_is_required() -> None:
    assert spec().validate_component(INPUT, {}, at="input") == ["input.prompt: is required"]


def test_enum_lists_the_allowed_values() -> None:
    problems = input_problems({"aspect_ratio": "7:7"})
    assert len(problems) == 1
    assert problems[0].startswith("input.aspect_ratio:")
    enum = spec().schema(INPUT)["properties"]["aspect_ratio"]["enum"]
    for allowed in enum:
        assert repr(allowed) in problems[0]
    assert "7:7" not in problems[0]


def test_one_problem_per_field_sorted() -> None:
    problems = input_problems({"resolution": "8K", "output_format": "gif"})
    assert [p.split(":", 1)[0] for p in problems] == ["input.output_format", "input.resolution"]
    assert "'png', 'jpg'" in problems[0]
    assert "'1K', '2K', '4K'" in problems[1]


def test_unknown_field_is_named() -> None:
    problems = input_problems({"callback_url": "https://example.com/hook"})
    assert len(problems) == 1
    assert problems[0].startswith("input: unknown field 'callback_url'")
    assert "prompt" in problems[0]  # and the allowed fields are listed


def test_wrong_type_is_named() -> None:
    assert input_problems({"prompt": 5}) == ["input.prompt: must be of type string"]
    problems = input_problems({"image_input": "https://example.com/a.png"})
    assert problems == ["input.image_input: must be of type array"]


def test_too_many_reference_images_mentions_the_limit() -> None:
    urls = [f"https://example.com/{i}.png" for i in range(9)]
    problems = input_problems({"image_input": urls})
    assert len(problems) == 1
    assert problems[0].startswith("input.image_input:")
    assert "8" in problems[0]
    assert input_problems({"image_input": urls[:8]}) == []


def test_a_bad_reference_url_names_its_index() -> None:
    problems = input_problems({"image_input": ["https://example.com/a.png", "not a url"]})
    assert len(problems) == 1
    assert problems[0].startswith("input.image_input[1]:")


@pytest.mark.parametrize("url", ["ftp://x", "example.com/hook", "/relative", "https://"])
def test_callback_url_must_be_http_or_https(url: str) -> None:
    problems = spec().validate_component("Callback", {"url": url}, at="callback")
    assert problems == ["callback.url: must be an absolute http:// or https:// URL"]


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://127.0.0.1:9000/cb?x=1"])
def test_callback_url_accepts_http_and_https(url: str) -> None:
    assert spec().validate_component("Callback", {"url": url}, at="callback") == []


def test_callback_url_message_through_the_models_request_schema() -> None:
    body = {"model": "Nano-Banana-Pro", "input": {"prompt": "a"}, "callback": {"url": "ftp://x"}}
    problems = spec().validate_component("NanoBananaProTaskRequest", body)
    assert problems == ["callback.url: must be an absolute http:// or https:// URL"]


@pytest.mark.parametrize(
    "value",
    [
        {"prompt": LONG + "x"},  # too long
        {"aspect_ratio": LONG},  # not in the enum
        {"resolution": [LONG]},  # wrong type
        {"image_input": [LONG]},  # not a URI
        {"output_format": {"a": LONG}},  # wrong type
    ],
)
def test_messages_never_echo_a_huge_value(value: dict[str, Any]) -> None:
    problems = input_problems(value)
    assert problems
    assert all(len(p) < 300 for p in problems), [len(p) for p in problems]


def test_callback_messages_never_echo_a_huge_url() -> None:
    problems = spec().validate_component("Callback", {"url": "ftp://" + LONG}, at="callback")
    assert problems
    assert all(len(p) < 300 for p in problems)


def test_unknown_field_message_never_echoes_a_huge_field_name() -> None:
    # The field name is client data too: a 10000-character key must not come back in full.
    problems = input_problems({LONG: 1})
    assert len(problems) == 1
    assert problems[0].startswith("input: unknown field")
    assert len(problems[0]) < 300, len(problems[0])


# --- check_response ---------------------------------------------------------------------


def task_envelope(**data: Any) -> dict[str, Any]:
    task = {
        "taskId": TASK_ID,
        "model": "Nano-Banana-Pro",
        "status": "handling",
        "created": 1_767_225_600,
        "completed": 0,
        **data,
    }
    return {"code": 200, "message": "success", "data": task}


def test_a_conforming_task_answer_passes() -> None:
    problems = spec().check_response(
        "GET", f"/v1/tasks/{TASK_ID}", 200, RATE_HEADERS, task_envelope()
    )
    assert problems == []


def test_a_conforming_finished_task_answer_passes() -> None:
    output = [{"url": "http://127.0.0.1:8000/files/a.png", "type": "image", "expireAt": 1}]
    body = task_envelope(status="success", completed=1_767_225_613, output=output)
    assert spec().check_response("GET", f"/v1/tasks/{TASK_ID}", 200, RATE_HEADERS, body) == []


def test_a_conforming_create_answer_passes() -> None:
    body = {"code": 200, "message": "success", "data": {"taskId": TASK_ID}}
    headers = {k.lower(): v for k, v in RATE_HEADERS.items()}  # header names are case-blind
    assert spec().check_response("POST", "/v1/tasks", 200, headers, body) == []


def test_a_bad_status_name_fails() -> None:
    body = task_envelope(status="running")
    problems = spec().check_response("GET", f"/v1/tasks/{TASK_ID}", 200, RATE_HEADERS, body)
    assert len(problems) == 1
    assert "data.status" in problems[0]
    assert "'queued'" in problems[0]


def test_output_on_an_unfinished_task_fails() -> None:
    output = [{"url": "http://127.0.0.1:8000/files/a.png", "type": "image", "expireAt": 1}]
    body = task_envelope(status="queued", output=output)
    assert spec().check_response("GET", f"/v1/tasks/{TASK_ID}", 200, RATE_HEADERS, body) != []


def test_a_missing_required_header_fails() -> None:
    headers = {k: v for k, v in RATE_HEADERS.items() if k != "X-RateLimit-Limit"}
    problems = spec().check_response("GET", f"/v1/tasks/{TASK_ID}", 200, headers, task_envelope())
    assert problems == ["GET /v1/tasks/{taskId} 200: required header X-RateLimit-Limit is missing"]


def test_a_malformed_header_fails() -> None:
    headers = {**RATE_HEADERS, "X-RateLimit-Remaining": "many"}
    problems = spec().check_response("GET", f"/v1/tasks/{TASK_ID}", 200, headers, task_envelope())
    assert len(problems) == 1
    assert "X-RateLimit-Remaining" in problems[0]


def test_an_undeclared_status_fails() -> None:
    problems = spec().check_response(
        "GET", f"/v1/tasks/{TASK_ID}", 418, RATE_HEADERS, task_envelope()
    )
    assert problems == ["GET /v1/tasks/{taskId}: status 418 is not declared"]


def test_an_unknown_operation_fails() -> None:
    problems = spec().check_response("DELETE", "/v1/tasks", 200, RATE_HEADERS, {})
    assert len(problems) == 1
    assert "no such operation" in problems[0]


def test_a_rate_limited_answer_needs_retry_after() -> None:
    body = {"code": 429, "message": "slow down", "data": None, "error_code": "RATE_LIMITED"}
    path = "/v1/tasks"
    with_retry = {**RATE_HEADERS, "Retry-After": "7"}
    assert spec().check_response("POST", path, 429, with_retry, body) == []
    problems = spec().check_response("POST", path, 429, RATE_HEADERS, body)
    assert problems == ["POST /v1/tasks 429: required header Retry-After is missing"]


def test_a_spec_built_from_a_copy_is_independent() -> None:
    document = copy.deepcopy(load())
    document["components"]["schemas"][INPUT]["properties"]["prompt"]["maxLength"] = 10
    shorter = Spec(document)
    long_prompt = {"prompt": "a" * 11}
    assert shorter.validate_component(INPUT, long_prompt, at="input") != []
    assert spec().validate_component(INPUT, long_prompt, at="input") == []


def test_rules_without_their_own_wording_are_shortened_too() -> None:
    # Rules the spec does not word itself (uniqueItems, not) fall back to the validator's text,
    # which quotes the value: it must be cut short.
    document = copy.deepcopy(load())
    document["components"]["schemas"]["Tagged"] = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "uniqueItems": True},
            "name": {"not": {"type": "string"}},
        },
    }
    problems = Spec(document).validate_component("Tagged", {"tags": [LONG, LONG], "name": LONG})
    assert [p.split(":", 1)[0] for p in problems] == ["name", "tags"]
    assert all(len(p) < 300 for p in problems), [len(p) for p in problems]
