"""Every documented refusal, in HiAPI's envelope, with the field named; and the server keeps
serving after each."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from mock_server.app import create_app
from mock_server.config import MockConfig

from ..conftest import KEY, PAGE_EXAMPLE, Fake, auth, fixed_config

MakeFake = Callable[..., Fake]


def refused(response: Any, status: int, error_code: str, *fragments: str) -> None:
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["code"] == status
    assert envelope["data"] is None
    assert envelope["error_code"] == error_code
    for fragment in fragments:
        assert fragment in envelope["message"], envelope["message"]


def nbp(**params: Any) -> dict[str, Any]:
    return {"model": "Nano-Banana-Pro", "input": {"prompt": "x", **params}}


INVALID_BODIES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("not an object", [1, 2], ("body: must be a JSON object",)),
    ("no model", {"input": {"prompt": "x"}}, ("model:", "Nano-Banana-Pro")),
    ("model not a string", {"model": 7, "input": {"prompt": "x"}}, ("model:",)),
    (
        "unknown model",
        {"model": "Banana-9000", "input": {}},
        ("model:", "Banana-9000", "available"),
    ),
    (
        "unknown route",
        {**nbp(), "route": "turbo"},
        ("route:", "turbo", "available routes: default"),
    ),
    ("unknown @route", {**nbp(), "model": "Nano-Banana-Pro@turbo"}, ("route:", "turbo")),
    ("route conflict", {**nbp(), "model": "Nano-Banana-Pro@default", "route": "x"}, ("route:",)),
    ("route not a string", {**nbp(), "route": 3}, ("route: must be of type string",)),
    ("no input", {"model": "Nano-Banana-Pro"}, ("input: is required",)),
    (
        "input not an object",
        {"model": "Nano-Banana-Pro", "input": "x"},
        ("input: must be of type",),
    ),
    ("no prompt", {"model": "Nano-Banana-Pro", "input": {}}, ("input.prompt: is required",)),
    ("empty prompt", nbp(prompt=""), ("input.prompt:", "at least 1")),
    ("prompt too long", nbp(prompt="p" * 10_001), ("input.prompt:", "10000 characters")),
    ("prompt not a string", nbp(prompt=5), ("input.prompt: must be of type string",)),
    ("9 references", nbp(image_input=["https://e.com/a.png"] * 9), ("input.image_input:", "8")),
    ("reference not a URL", nbp(image_input=["not a url"]), ("input.image_input[0]:", "uri")),
    ("references not a list", nbp(image_input="https://e.com/a.png"), ("input.image_input:",)),
    ("bad ratio", nbp(aspect_ratio="7:3"), ("input.aspect_ratio:", "'16:9'", "'auto'")),
    ("bad resolution", nbp(resolution="8K"), ("input.resolution:", "'1K'", "'4K'")),
    ("bad format", nbp(output_format="webp"), ("input.output_format:", "'png'", "'jpg'")),
    ("jpeg is Nano-Banana's", nbp(output_format="jpeg"), ("input.output_format:",)),
    ("unknown input field", nbp(aspectRatio="1:1"), ("input:", "'aspectRatio'", "aspect_ratio")),
    (
        "callback in input",
        nbp(callback={"url": "https://e.com/cb"}),
        ("input.callback:", "top level"),
    ),
    ("callBackUrl in input", nbp(callBackUrl="https://e.com"), ("input.callBackUrl:", "top level")),
    ("unknown top field", {**nbp(), "webhook": "x"}, ("body:", "'webhook'")),
    ("callback not object", {**nbp(), "callback": "https://e.com"}, ("callback: must be of type",)),
    ("callback no url", {**nbp(), "callback": {}}, ("callback.url: is required",)),
    ("callback ftp", {**nbp(), "callback": {"url": "ftp://e.com/cb"}}, ("callback.url:", "http")),
    ("callback relative", {**nbp(), "callback": {"url": "/cb"}}, ("callback.url:",)),
    (
        "callback when",
        {**nbp(), "callback": {"url": "https://e.com", "when": "now"}},
        ("callback.when",),
    ),
]


@pytest.mark.parametrize(
    ("body", "fragments"),
    [(b, f) for _, b, f in INVALID_BODIES],
    ids=[name for name, _, _ in INVALID_BODIES],
)
def test_invalid_bodies_are_400_naming_the_field(
    asgi_fake: Fake, body: Any, fragments: tuple[str, ...]
) -> None:
    refused(asgi_fake.create(body), 400, "INVALID_REQUEST", *fragments)
    assert len(asgi_fake.create(body).json()["message"]) < 1000  # never echoes a huge value
    assert asgi_fake.create(PAGE_EXAMPLE).status_code == 200  # still serving


def test_invalid_bodies_are_refused_over_a_real_server_too(fake: Fake) -> None:
    for _, body, fragments in INVALID_BODIES:
        refused(fake.create(body), 400, "INVALID_REQUEST", *fragments)
    assert fake.client.get("/v1/tasks", headers=auth()).json()["data"]["total"] == 0


def test_every_enum_value_is_accepted(asgi_fake: Fake) -> None:
    schema = asgi_fake.backend.spec.schema("NanoBananaProInput")["properties"]
    for field in ("aspect_ratio", "resolution", "output_format"):
        for value in schema[field]["enum"]:
            assert asgi_fake.create(nbp(**{field: value})).status_code == 200, (field, value)
    for count in (0, 1, 8):
        assert asgi_fake.create(nbp(image_input=["https://e.com/a.png"] * count)).status_code == 200
    assert asgi_fake.create(nbp(prompt="p" * 10_000)).status_code == 200
    callback = {"url": "http://127.0.0.1:9/cb", "when": "final"}
    assert asgi_fake.create({**nbp(), "callback": callback}).status_code == 200


# -- transport-level refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_non_json_content_type_is_415(fake: Fake, content_type: str | None) -> None:
    headers = auth() | ({"Content-Type": content_type} if content_type else {})
    response = fake.client.post("/v1/tasks", content=json.dumps(PAGE_EXAMPLE), headers=headers)
    refused(response, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json")


def test_json_with_charset_is_accepted(fake: Fake) -> None:
    headers = auth() | {"Content-Type": "application/json; charset=utf-8"}
    response = fake.client.post("/v1/tasks", content=json.dumps(PAGE_EXAMPLE), headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b'{"model": "Nano-Banana-Pro",}', "not valid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"model": NaN}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"null", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
    ids=["empty", "truncated", "trailing comma", "bad utf-8", "NaN", "deep", "null", "string"],
)
def test_malformed_json_is_400(fake: Fake, raw: bytes, fragment: str) -> None:
    headers = auth() | {"Content-Type": "application/json"}
    response = fake.client.post("/v1/tasks", content=raw, headers=headers)
    refused(response, 400, "INVALID_REQUEST", fragment)
    assert fake.create(PAGE_EXAMPLE).status_code == 200


def test_body_over_10_mb_is_413_by_length(fake: Fake) -> None:
    big = b'{"model": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    headers = auth() | {"Content-Type": "application/json"}
    response = fake.client.post("/v1/tasks", content=big, headers=headers)
    refused(response, 413, "PAYLOAD_TOO_LARGE", "10 MB")
    assert fake.create(PAGE_EXAMPLE).status_code == 200


def test_body_over_10_mb_is_413_while_streaming(fake: Fake) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "'
        for _ in range(11):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    headers = auth() | {"Content-Type": "application/json"}
    response = fake.client.post("/v1/tasks", content=chunks(), headers=headers)
    refused(response, 413, "PAYLOAD_TOO_LARGE")
    assert fake.create(PAGE_EXAMPLE).status_code == 200


def test_body_just_under_the_limit_is_read(asgi_fake: Fake) -> None:
    prompt_room = 10 * 1024 * 1024 - 200
    body = json.dumps({"model": "Nano-Banana-Pro", "input": {"prompt": "p" * prompt_room}})
    headers = auth() | {"Content-Type": "application/json"}
    response = asgi_fake.client.post("/v1/tasks", content=body, headers=headers)
    refused(response, 400, "INVALID_REQUEST", "input.prompt:", "10000")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic sk-test", "Bearer pk-live-123", "sk-test", "Bearer sk-"],
)
def test_missing_or_bad_key_is_401(fake: Fake, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for response in (
        fake.client.post("/v1/tasks", json=PAGE_EXAMPLE, headers=headers),
        fake.client.get("/v1/tasks", headers=headers),
        fake.client.get("/v1/tasks/tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR", headers=headers),
    ):
        refused(response, 401, "UNAUTHORIZED", "API key")


def test_bearer_scheme_is_case_insensitive(asgi_fake: Fake) -> None:
    response = asgi_fake.client.get("/v1/tasks", headers={"Authorization": f"bearer {KEY}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "task_id",
    [
        "tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR",
        "nope",
        "tk-hiapi-" + "Z" * 2000,
        "%E2%9C%93",
        "..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_unknown_or_odd_task_ids_are_404(fake: Fake, task_id: str) -> None:
    refused(fake.get(task_id), 404, "NOT_FOUND")


def test_unknown_paths_are_404_and_wrong_methods_405_with_allow(fake: Fake) -> None:
    refused(fake.client.get("/v1/nothing", headers=auth()), 404, "NOT_FOUND", "/v1/nothing")
    wrong = fake.client.delete("/v1/tasks", headers=auth())
    refused(wrong, 405, "METHOD_NOT_ALLOWED", "DELETE")
    assert set(wrong.headers["Allow"].split(", ")) >= {"GET", "POST"}
    put = fake.client.put("/v1/tasks/tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR", headers=auth())
    refused(put, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in put.headers["Allow"]


def test_idempotency_key_over_255_bytes_is_400(asgi_fake: Fake) -> None:
    response = asgi_fake.create(PAGE_EXAMPLE, headers={"Idempotency-Key": "k" * 256})
    refused(response, 400, "INVALID_REQUEST", "Idempotency-Key")
    ok = asgi_fake.create(PAGE_EXAMPLE, headers={"Idempotency-Key": "k" * 255})
    assert ok.status_code == 200


# -- rate limits ----------------------------------------------------------------------------------


def test_every_v1_answer_carries_rate_limit_headers(fake: Fake) -> None:
    responses = [
        fake.create(PAGE_EXAMPLE),
        fake.create({"model": "nope"}),
        fake.client.get("/v1/tasks", headers=auth()),
        fake.get("nope"),
        fake.client.get("/v1/tasks"),
    ]
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in responses[:4]]
    assert remaining == [59, 58, 57, 56]
    for response in responses:
        assert response.headers["X-RateLimit-Limit"] == "60"
        assert int(response.headers["X-RateLimit-Reset"]) == 1_767_225_660


def test_61st_request_in_a_minute_is_429_with_retry_after(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(rate_limit=True))
    fake.clock.advance(15)  # 45 s left in the window
    for expected in range(59, -1, -1):
        response = fake.client.get("/v1/tasks", headers=auth())
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == str(expected)
    limited = fake.create(PAGE_EXAMPLE)
    refused(limited, 429, "RATE_LIMITED", "60 requests per minute")
    assert limited.headers["Retry-After"] == "45"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Reset"] == "1767225660"
    other = fake.client.get("/v1/tasks", headers=auth("sk-someone-else"))
    assert other.status_code == 200  # limits are per key
    fake.clock.advance(45)
    again = fake.client.get("/v1/tasks", headers=auth())
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Remaining"] == "59"
    assert again.headers["X-RateLimit-Reset"] == "1767225720"


def test_rate_limits_are_off_in_fast_and_on_in_realistic() -> None:
    assert not MockConfig(profile="fast").rate_limit_enforced()
    assert not MockConfig(profile="instant").rate_limit_enforced()
    assert MockConfig(profile="realistic").rate_limit_enforced()
    assert MockConfig(profile="fast", rate_limit=True).rate_limit_enforced()


# -- the spec and unexpected errors ---------------------------------------------------------------


def test_the_spec_is_served(asgi_fake: Fake) -> None:
    response = asgi_fake.client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.text.startswith("openapi: 3.1")


def test_an_unexpected_error_is_a_500_envelope_and_serving_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(fixed_config())
    client = TestClient(app, raise_server_exceptions=False)

    def broken(owner: str, task_id: str) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.backend, "task_json", broken)
    response = client.get("/v1/tasks/anything", headers=auth())
    refused(response, 500, "INTERNAL_ERROR", "internal error")
    assert "boom" not in response.text
    assert client.get("/v1/tasks", headers=auth()).status_code == 200
