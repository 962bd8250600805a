from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from client import AsyncHiAPIClient, HiAPIClient, HiAPIError

from .conftest import MakeApi
from .support import API_KEY, BASE, TASK_ID, FakeClock, Script, task_reply


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIAPI_API_KEY", raising=False)
    monkeypatch.delenv("HIAPI_BASE_URL", raising=False)


@pytest.mark.parametrize(
    "given",
    [
        "https://api.test",
        "https://api.test/",
        "https://api.test/v1",
        "https://api.test/v1/",
        " https://api.test/V1// ",
    ],
)
def test_base_url_with_or_without_v1(make_api: MakeApi, given: str) -> None:
    script = Script(task_reply())
    api = make_api(script, base_url=given)
    assert api.client.base_url == BASE
    api.retrieve(TASK_ID)
    assert str(script.requests[0].url) == f"{BASE}/v1/tasks/{TASK_ID}"


def test_base_url_keeps_a_path_prefix(make_api: MakeApi) -> None:
    script = Script(task_reply())
    make_api(script, base_url="https://gw.test/hiapi/v1/").retrieve(TASK_ID)
    assert str(script.requests[0].url) == f"https://gw.test/hiapi/v1/tasks/{TASK_ID}"


def test_base_url_defaults_to_the_live_api() -> None:
    with HiAPIClient(api_key=API_KEY) as client:
        assert client.base_url == "https://api.hiapi.ai"


def test_base_url_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIAPI_BASE_URL", "http://127.0.0.1:8000/v1")
    with HiAPIClient(api_key=API_KEY) as client:
        assert client.base_url == "http://127.0.0.1:8000"
    with HiAPIClient(api_key=API_KEY, base_url=BASE) as client:
        assert client.base_url == BASE


@pytest.mark.parametrize(
    "bad", ["api.hiapi.ai", "ftp://api.test", "https://", "https://a.test/?q=1"]
)
def test_a_base_url_that_is_not_http_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        HiAPIClient(api_key=API_KEY, base_url=bad)


def test_api_key_from_the_environment(make_api: MakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIAPI_API_KEY", "sk-from-env")
    script = Script(task_reply(), task_reply())
    make_api(script, api_key=None).retrieve(TASK_ID)
    make_api(script, api_key="sk-given").retrieve(TASK_ID)
    assert script.header("authorization") == ["Bearer sk-from-env", "Bearer sk-given"]


@pytest.mark.parametrize("key", [None, "", "   "])
@pytest.mark.parametrize("cls", [HiAPIClient, AsyncHiAPIClient])
def test_a_missing_api_key_fails_at_construction(
    key: str | None, cls: type[HiAPIClient] | type[AsyncHiAPIClient]
) -> None:
    with pytest.raises(HiAPIError, match="HIAPI_API_KEY"):
        cls(api_key=key, base_url=BASE)


def test_an_api_key_that_cannot_be_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="api_key"):
        HiAPIClient(api_key="sk-a\r\nX-Evil: 1", base_url=BASE)


def test_the_key_never_shows_in_repr() -> None:
    with HiAPIClient(api_key=API_KEY, base_url=BASE) as client:
        assert API_KEY not in repr(client)
        assert API_KEY not in repr(client._core)
        assert BASE in repr(client)


def test_user_agent_default_and_custom(make_api: MakeApi) -> None:
    script = Script(task_reply(), task_reply())
    make_api(script).retrieve(TASK_ID)
    make_api(script, user_agent="my-app/2").retrieve(TASK_ID)
    agents = script.header("user-agent")
    assert (agents[0] or "").startswith("hiapi-client-python/")
    assert agents[1] == "my-app/2"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 60.0}),
        ({"timeout": None}, {"connect": None, "read": None, "write": None, "pool": None}),
        ({"timeout": 5}, {"connect": 5, "read": 5, "write": 5, "pool": 5}),
    ],
)
def test_timeout_default_none_and_given(
    make_api: MakeApi, given: dict[str, object], expected: dict[str, object]
) -> None:
    script = Script(task_reply())
    make_api(script, **given).retrieve(TASK_ID)
    assert script.requests[0].extensions["timeout"] == expected


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        HiAPIClient(api_key=API_KEY, base_url=BASE, max_retries=-1)


def test_context_managers_close_the_connection_pool(clock: FakeClock) -> None:
    script = Script()
    with HiAPIClient(api_key=API_KEY, base_url=BASE, transport=script.transport) as client:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        client.retrieve(TASK_ID)

    async def use_async() -> AsyncHiAPIClient:
        async with AsyncHiAPIClient(
            api_key=API_KEY, base_url=BASE, transport=script.transport, rng=random.Random(1)
        ) as client:
            return client

    closed = asyncio.run(use_async())
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(closed.retrieve(TASK_ID))
    assert script.count == 0


def test_transport_is_used_for_every_request() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return task_reply()

    with HiAPIClient(api_key=API_KEY, base_url=BASE, transport=httpx.MockTransport(handler)) as c:
        c.retrieve(TASK_ID)
    assert seen == [f"/v1/tasks/{TASK_ID}"]
