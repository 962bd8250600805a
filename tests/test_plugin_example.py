"""Tests of a small HiAPI client, written as a user of hiapi-mock would write them.

The "user code" at the top is what an application has: it knows HiAPI, not the fake. The tests
below use only what installing hiapi-mock gives every project, the pytest plugin's fixtures
(`hiapi_mock`, `hiapi_base_url`, `hiapi_api_key`, `hiapi_receiver`), and import from it only
the fixtures' types. The fake runs on a manual clock: the user code takes its `sleep` as a
parameter, and the tests pass `hiapi_mock.advance`, so waiting between polls moves the fake's
clock instead of the wall clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from mock_server import CallbackReceiver
from mock_server.pytest_plugin import HiapiMock

# -- user code --------------------------------------------------------------------------------

Sleep = Callable[[float], None]


class GenerationError(Exception):
    """HiAPI refused the request, or the task ended in `fail`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def start_task(
    base_url: str,
    api_key: str,
    prompt: str,
    *,
    callback_url: str | None = None,
    sleep: Sleep = time.sleep,
    max_retries: int = 3,
) -> str:
    """Create a Nano-Banana-Pro task; a 429 or 503 with `Retry-After` is retried after it."""
    body: dict[str, Any] = {
        "model": "Nano-Banana-Pro",
        "input": {"prompt": prompt, "aspect_ratio": "1:1", "resolution": "1K"},
    }
    if callback_url is not None:
        body["callback"] = {"url": callback_url}
    with httpx.Client(base_url=base_url, headers=_auth(api_key), timeout=30) as client:
        for _ in range(max_retries + 1):
            response = client.post("/v1/tasks", json=body)
            if response.status_code in (429, 503) and "Retry-After" in response.headers:
                sleep(float(response.headers["Retry-After"]))
                continue
            envelope = response.json()
            if response.status_code != 200:
                raise GenerationError(envelope["error_code"], envelope["message"])
            return str(envelope["data"]["taskId"])
    raise GenerationError("RATE_LIMITED", f"still refused after {max_retries} retries")


def wait_for_task(
    base_url: str,
    api_key: str,
    task_id: str,
    *,
    sleep: Sleep = time.sleep,
    poll_every: float = 2.0,
    max_polls: int = 60,
) -> dict[str, Any]:
    """Poll until the task ends; its object on success, GenerationError on failure."""
    with httpx.Client(base_url=base_url, headers=_auth(api_key), timeout=30) as client:
        for _ in range(max_polls):
            task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").raise_for_status().json()
            task = task["data"]
            if task["status"] == "success":
                return task
            if task["status"] == "fail":
                raise GenerationError(task["error"]["code"], task["error"]["message"])
            sleep(poll_every)
    raise GenerationError("TIMEOUT", f"task {task_id} did not end after {max_polls} polls")


def generate(base_url: str, api_key: str, prompt: str, *, sleep: Sleep = time.sleep) -> bytes:
    """The image for `prompt`: create, poll until done, download."""
    task_id = start_task(base_url, api_key, prompt, sleep=sleep)
    task = wait_for_task(base_url, api_key, task_id, sleep=sleep)
    with httpx.Client(timeout=30) as client:
        return client.get(task["output"][0]["url"]).raise_for_status().content


def verify_callback(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> bool:
    """Whether a callback is HiAPI's: HMAC-SHA256 of `timestamp + "." + body`, fresh."""
    timestamp = headers.get("x-hiapi-timestamp", "")
    signature = headers.get("x-hiapi-signature", "")
    now = time.time() if now is None else now
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > 300:
        return False
    message = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


# -- tests ------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"
SECRET = "whsec_test_0123456789abcdef"


def test_generate_returns_the_image(
    hiapi_mock: HiapiMock, hiapi_base_url: str, hiapi_api_key: str
) -> None:
    started = hiapi_mock.clock.now()
    image = generate(hiapi_base_url, hiapi_api_key, "a banana on marble", sleep=hiapi_mock.advance)
    assert image.startswith(PNG)
    # One poll saw the task queued, the 2 s wait ended it, the second poll saw success.
    assert hiapi_mock.clock.now() == started + 2.0
    assert [(e.method, e.status) for e in hiapi_mock.journal()] == [
        ("POST", 200),
        ("GET", 200),
        ("GET", 200),
        ("GET", 200),
    ]


def test_a_task_that_ends_at_once_needs_no_waiting(hiapi_mock: HiapiMock) -> None:
    hiapi_mock.add_rule(action={"type": "timing"})  # no time queued, handling or archiving

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s")

    image = generate(hiapi_mock.url, hiapi_mock.api_key, "a banana", sleep=no_sleep)
    assert image.startswith(PNG)


def test_a_failed_task_raises_its_code(hiapi_mock: HiapiMock) -> None:
    hiapi_mock.add_rule(
        match={"prompt": "forbidden fruit"},
        action={"type": "outcome", "status": "fail", "code": "CONTENT_POLICY", "message": "no"},
        times=1,
    )
    with pytest.raises(GenerationError) as failed:
        generate(hiapi_mock.url, hiapi_mock.api_key, "forbidden fruit", sleep=hiapi_mock.advance)
    assert failed.value.code == "CONTENT_POLICY"
    # The rule was used up: the same prompt now works.
    image = generate(
        hiapi_mock.url, hiapi_mock.api_key, "forbidden fruit", sleep=hiapi_mock.advance
    )
    assert image.startswith(PNG)


def test_a_prompt_directive_fails_a_task_without_the_control_api(hiapi_mock: HiapiMock) -> None:
    with pytest.raises(GenerationError, match="TASK_FAILED"):
        generate(hiapi_mock.url, hiapi_mock.api_key, "[mock:fail]", sleep=hiapi_mock.advance)


def test_a_429_is_retried_after_its_retry_after(hiapi_mock: HiapiMock) -> None:
    hiapi_mock.add_rule(
        match={"method": "POST", "path": "/v1/tasks"},
        action={"type": "http", "status": 429, "retry_after": 7},
        times=2,
    )
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        hiapi_mock.advance(seconds)

    assert generate(hiapi_mock.url, hiapi_mock.api_key, "a banana", sleep=sleep).startswith(PNG)
    assert slept[:2] == [7.0, 7.0]
    assert [e.status for e in hiapi_mock.journal(method="POST")] == [429, 429, 200]


def test_throttling_that_never_ends_is_reported(hiapi_mock: HiapiMock) -> None:
    hiapi_mock.add_rule(
        match={"method": "POST", "path": "/v1/tasks"},
        action={"type": "http", "status": 429, "retry_after": 7},
    )
    with pytest.raises(GenerationError, match="RATE_LIMITED"):
        start_task(hiapi_mock.url, hiapi_mock.api_key, "a banana", sleep=hiapi_mock.advance)
    assert len(hiapi_mock.journal(method="POST")) == 4


def test_a_task_forced_to_fail_midway(hiapi_mock: HiapiMock) -> None:
    task_id = start_task(hiapi_mock.url, hiapi_mock.api_key, "slow [mock:delay=1h]")
    hiapi_mock.advance("10m")
    assert hiapi_mock.wait_for_status(task_id, "handling", timeout=1)
    hiapi_mock.finish(task_id, "fail", "TASK_FAILED", "the GPU caught fire")
    with pytest.raises(GenerationError, match="the GPU caught fire"):
        wait_for_task(hiapi_mock.url, hiapi_mock.api_key, task_id, sleep=hiapi_mock.advance)


def test_the_callback_is_signed_and_verifies(
    hiapi_mock: HiapiMock, hiapi_receiver: CallbackReceiver
) -> None:
    # As an account with a webhook signing key; the next test starts unsigned again.
    hiapi_mock.webhook_secret = SECRET
    hook = hiapi_receiver.url_for("/hooks/hiapi")
    task_id = start_task(hiapi_mock.url, hiapi_mock.api_key, "a banana", callback_url=hook)
    hiapi_mock.advance(1)  # the task ends, and advance() returns once its callback is made
    [callback] = hiapi_receiver.received
    assert callback.path == "/hooks/hiapi"
    assert callback.json()["taskId"] == task_id
    assert callback.json()["status"] == "success"
    # Callbacks are stamped with the fake's clock, so check freshness against it.
    now = hiapi_mock.clock.now()
    assert verify_callback(SECRET, callback.headers, callback.body, now=now)
    assert not verify_callback(SECRET, callback.headers, callback.body + b" ", now=now)
    assert not verify_callback("whsec_someone_elses_key", callback.headers, callback.body, now=now)
    assert not verify_callback(SECRET, callback.headers, callback.body, now=now + 301)


def test_a_refused_callback_is_retried_a_minute_later(
    hiapi_mock: HiapiMock, hiapi_receiver: CallbackReceiver
) -> None:
    hiapi_receiver.fail_next(1, status=503)
    hook = hiapi_receiver.url_for("/hooks/hiapi")
    task_id = start_task(hiapi_mock.url, hiapi_mock.api_key, "a banana", callback_url=hook)
    hiapi_mock.advance(1)
    assert [a.status for a in hiapi_mock.deliveries(task_id)] == [503]
    hiapi_mock.advance(60)
    assert hiapi_mock.wait_for_callback(task_id, timeout=1)
    first, retry = hiapi_receiver.received
    assert (first.answered, retry.answered) == (503, 200)
    assert first.body == retry.body


def test_a_dropped_callback_leaves_polling_to_find_the_end(
    hiapi_mock: HiapiMock, hiapi_receiver: CallbackReceiver
) -> None:
    hook = hiapi_receiver.url_for("/hooks/hiapi")
    prompt = "a banana [mock:callback=drop]"
    task_id = start_task(hiapi_mock.url, hiapi_mock.api_key, prompt, callback_url=hook)
    task = wait_for_task(hiapi_mock.url, hiapi_mock.api_key, task_id, sleep=hiapi_mock.advance)
    assert task["status"] == "success"
    assert hiapi_receiver.received == []
    assert [a.fault for a in hiapi_mock.deliveries(task_id)] == ["drop"]
