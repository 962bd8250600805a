"""Envelopes and errors: each answer becomes data or the right exception."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest

from client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    HiAPIError,
    IdempotencyMismatchError,
    IdempotencyProcessingError,
    InsufficientBalanceError,
    InternalServerError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Task,
    TaskFailedError,
    WaitTimeoutError,
)
from client.errors import error_class

from .conftest import MakeApi
from .support import MODEL, PROMPT, TASK_ID, Script, error, ok, task_data


@pytest.mark.parametrize(
    ("status", "error_code", "cls"),
    [
        (400, "INVALID_REQUEST", InvalidRequestError),
        (400, None, InvalidRequestError),
        (401, None, AuthenticationError),
        (402, None, InsufficientBalanceError),
        (403, None, PermissionDeniedError),
        (404, None, NotFoundError),
        (409, "IDEMPOTENCY_KEY_PROCESSING", IdempotencyProcessingError),
        (422, "IDEMPOTENCY_KEY_MISMATCH", IdempotencyMismatchError),
        (429, None, RateLimitError),
        (503, "MODEL_UNAVAILABLE", ServiceUnavailableError),
        (503, "STORAGE_UNAVAILABLE", ServiceUnavailableError),
        (503, "TASK_TIMEOUT", ServiceUnavailableError),
        (503, None, ServiceUnavailableError),
        (500, None, InternalServerError),
        (502, None, InternalServerError),
        (504, None, InternalServerError),
        (501, None, InternalServerError),
        (413, None, APIStatusError),
        (415, None, APIStatusError),
    ],
)
def test_each_status_and_error_code_has_its_class(
    make_api: MakeApi, status: int, error_code: str | None, cls: type[APIStatusError]
) -> None:
    reply = error(status, error_code, "the reason", headers={"X-RateLimit-Remaining": "7"})
    with pytest.raises(APIStatusError) as caught:
        make_api(Script(reply), max_retries=0).retrieve(TASK_ID)
    err = caught.value
    assert type(err) is cls
    assert (err.status_code, err.error_code, err.message) == (status, error_code, "the reason")
    assert isinstance(err.body, dict) and err.body["code"] == status
    assert err.headers["x-ratelimit-remaining"] == "7"
    assert str(status) in str(err) and "the reason" in str(err)


@pytest.mark.parametrize(
    ("status", "error_code", "cls"),
    [
        (400, "IDEMPOTENCY_KEY_MISMATCH", IdempotencyMismatchError),
        (503, "INVALID_REQUEST", InvalidRequestError),
        (500, "MODEL_UNAVAILABLE", ServiceUnavailableError),
        (404, "SOMETHING_NEW", NotFoundError),
        (418, "SOMETHING_NEW", APIStatusError),
    ],
)
def test_error_code_wins_over_status(
    make_api: MakeApi, status: int, error_code: str, cls: type[APIStatusError]
) -> None:
    with pytest.raises(APIStatusError) as caught:
        make_api(Script(error(status, error_code)), max_retries=0).retrieve(TASK_ID)
    assert type(caught.value) is cls
    assert caught.value.status_code == status


def test_a_non_json_error_page_keeps_its_text(make_api: MakeApi) -> None:
    page = httpx.Response(502, text="<html><body>Bad   gateway\n</body></html>")
    with pytest.raises(InternalServerError) as caught:
        make_api(Script(page), max_retries=0).retrieve(TASK_ID)
    assert caught.value.message == "<html><body>Bad gateway </body></html>"
    assert caught.value.body == "<html><body>Bad   gateway\n</body></html>"
    assert caught.value.error_code is None


def test_an_empty_error_answer_uses_the_reason_phrase(make_api: MakeApi) -> None:
    with pytest.raises(PermissionDeniedError, match="Forbidden"):
        make_api(Script(httpx.Response(403)), max_retries=0).retrieve(TASK_ID)


def test_a_200_carrying_an_error_envelope_is_an_error(make_api: MakeApi) -> None:
    body = {"code": 400, "message": "bad prompt", "data": None, "error_code": "INVALID_REQUEST"}
    with pytest.raises(InvalidRequestError, match="bad prompt"):
        make_api(Script(httpx.Response(200, json=body))).create(MODEL, PROMPT)


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'{"code": 200, "message": "success"}',
        b'{"code": 200, "message": "success", "data": null}',
        b'{"code": 200, "message": "success", "data": "tk"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_a_malformed_envelope_is_a_clear_hiapi_error(make_api: MakeApi, content: bytes) -> None:
    reply = httpx.Response(200, content=content, headers={"Content-Type": "application/json"})
    with pytest.raises(MalformedResponseError):
        make_api(Script(reply)).retrieve(TASK_ID)


@pytest.mark.parametrize("data", [{}, {"taskId": None}, {"taskId": ""}, {"taskId": 42}])
def test_a_create_answer_without_a_task_id_is_malformed(make_api: MakeApi, data: Any) -> None:
    with pytest.raises(MalformedResponseError, match="taskId"):
        make_api(Script(ok(data))).create(MODEL, PROMPT)


def test_a_task_without_status_is_malformed(make_api: MakeApi) -> None:
    data = task_data()
    del data["status"]
    with pytest.raises(MalformedResponseError, match="status"):
        make_api(Script(ok(data))).retrieve(TASK_ID)


@pytest.mark.parametrize(
    ("raised", "cls"),
    [
        (httpx.ConnectError, APIConnectionError),
        (httpx.RemoteProtocolError, APIConnectionError),
        (httpx.ReadTimeout, APITimeoutError),
        (httpx.ConnectTimeout, APITimeoutError),
        (httpx.TooManyRedirects, APIConnectionError),
    ],
)
def test_httpx_errors_never_escape(
    make_api: MakeApi, raised: type[httpx.HTTPError], cls: type[APIConnectionError]
) -> None:
    exc = raised("boom")
    with pytest.raises(APIConnectionError) as caught:
        make_api(Script(exc), max_retries=0).retrieve(TASK_ID)
    assert type(caught.value) is cls
    assert caught.value.__cause__ is exc


def test_error_class_falls_back_on_the_status_family() -> None:
    assert error_class(599, None) is InternalServerError
    assert error_class(418, None) is APIStatusError
    assert error_class(200, "TASK_FAILED") is APIStatusError


def test_errors_survive_pickling() -> None:
    task = Task.from_dict(task_data("fail"))
    status = RateLimitError("slow down", status_code=429, headers={"a": "b"}, retry_after=3.0)
    for err in [
        status,
        TaskFailedError("failed", task=task),
        WaitTimeoutError("late", task_id=TASK_ID, timeout=5.0, task=task),
        HiAPIError("plain"),
    ]:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert vars(copy) == vars(err)
        assert str(copy) == str(err)
