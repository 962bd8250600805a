"""The pytest plugin, `mock_server/pytest_plugin.py`.

First as a project that installed hiapi-mock sees it: generated test files run by pytester in a
fresh interpreter, where the plugin comes from the `pytest11` entry point, under a strict ini
(`filterwarnings = error`). Then the handle's methods, in-process, through the fixtures this
suite gets from the same entry point.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import httpx
import pytest

from mock_server import pytest_plugin
from mock_server.clock import DEFAULT_START
from mock_server.pytest_plugin import HiapiMock
from mock_server.receiver import CallbackReceiver
from mock_server.rules import RuleError

from ..conftest import eventually

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.server

#: What a careful user's project runs with.
STRICT_INI = """\
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
xfail_strict = true
"""

#: Shared by the generated test files.
PRELUDE = """\
import threading

import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-test"}
BODY = {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana"}}


def boom(*args):
    raise RuntimeError("the fake broke")
"""

Run = Callable[..., pytest.RunResult]


@pytest.fixture
def strict(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with a strict ini, where installed plugins load as usual."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # whole lines in the short test summary
    pytester.makeini(STRICT_INI)
    return pytester


@pytest.fixture
def run(strict: pytest.Pytester) -> Run:
    """Run a generated test file in a subprocess; returns pytester's result."""

    def run(source: str, *args: str) -> pytest.RunResult:
        strict.makepyfile(test_user=PRELUDE + textwrap.dedent(source))
        return strict.runpytest_subprocess(*args, timeout=120)

    return run


# -- as a user's project sees it -------------------------------------------------------------


def test_the_fixtures_and_options_are_registered(strict: pytest.Pytester) -> None:
    fixtures = strict.runpytest_subprocess("--fixtures", timeout=120)
    fixtures.stdout.fnmatch_lines(
        [
            "*hiapi_mock_session* -- *pytest_plugin.py*",
            "*The session's fake, never reset*",
            "*hiapi_mock -- *pytest_plugin.py*",
            "*The fake HiAPI, reset for this test*",
            "*hiapi_base_url -- *",
            "*hiapi_api_key -- *",
            "*hiapi_receiver -- *",
            "*A started callback receiver*",
        ]
    )
    usage = strict.runpytest_subprocess("--help", timeout=120)
    usage.stdout.fnmatch_lines(
        ["*--hiapi-mock-seed=N*", "*--hiapi-mock-profile=*", "*hiapi_mock_profile*"]
    )


def test_the_fixtures_serve_the_fake(run: Run) -> None:
    result = run(
        """
        def test_everything_is_there(hiapi_mock, hiapi_base_url, hiapi_api_key, hiapi_receiver):
            assert hiapi_base_url == hiapi_mock.url and hiapi_base_url.startswith("http://127.0.0.1:")
            assert hiapi_api_key == hiapi_mock.api_key == "sk-test"
            body = {**BODY, "callback": {"url": hiapi_receiver.url_for("/hooks")}}
            with httpx.Client(base_url=hiapi_base_url, headers=AUTH) as client:
                task_id = client.post("/v1/tasks", json=body).json()["data"]["taskId"]
                hiapi_mock.advance(1)
                assert client.get(f"/v1/tasks/{task_id}").json()["data"]["status"] == "success"
            [callback] = hiapi_receiver.received
            assert callback.json()["taskId"] == task_id
        """
    )
    result.assert_outcomes(passed=1)


def test_each_test_gets_a_reset_fake_on_the_one_server(run: Run) -> None:
    result = run(
        """
        seen = {}


        def create(hiapi_mock):
            with httpx.Client(base_url=hiapi_mock.url, headers=AUTH) as client:
                return client.post("/v1/tasks", json=BODY).json()["data"]["taskId"]


        def test_first(hiapi_mock):
            seen["url"], seen["task"] = hiapi_mock.url, create(hiapi_mock)
            hiapi_mock.add_rule(action={"type": "outcome", "status": "fail"})
            hiapi_mock.advance("1h")
            hiapi_mock.webhook_secret = "whsec_0123456789abcdef"
            hiapi_mock.backend.config.failure_rate = 1.0


        def test_second(hiapi_mock):
            assert hiapi_mock.url == seen["url"]
            servers = [t for t in threading.enumerate() if t.name.startswith("uvicorn:")]
            assert len(servers) == 1
            with httpx.Client(base_url=hiapi_mock.url, headers=AUTH) as client:
                assert client.get(f"/v1/tasks/{seen['task']}").status_code == 404
            assert hiapi_mock.journal(path="/v1/tasks") == []
            assert hiapi_mock.backend.rules.list() == []
            assert hiapi_mock.clock.now() == 1767225600.0
            assert hiapi_mock.webhook_secret is None
            assert hiapi_mock.backend.config.failure_rate == 0.0
            assert create(hiapi_mock) == seen["task"]  # the seed starts again too
        """
    )
    result.assert_outcomes(passed=2)


def test_an_error_inside_the_fake_fails_the_test_that_caused_it(run: Run) -> None:
    result = run(
        """
        def test_breaks_the_fake(hiapi_mock, monkeypatch):
            monkeypatch.setattr(hiapi_mock.backend, "page", boom)
            response = httpx.get(hiapi_mock.url + "/v1/tasks", headers=AUTH)
            assert response.status_code == 500  # the test's own checks pass


        def test_fails_by_itself_too(hiapi_mock, monkeypatch):
            monkeypatch.setattr(hiapi_mock.backend, "page", boom)
            response = httpx.get(hiapi_mock.url + "/v1/tasks", headers=AUTH)
            assert response.status_code == 200, "the test's own message"


        def test_breaks_a_callback_job(hiapi_mock):
            async def job():
                raise RuntimeError("the delivery broke")

            hiapi_mock.backend.scheduler.at(hiapi_mock.clock.now(), job)
            hiapi_mock.advance(0)


        @pytest.fixture
        def breaks_the_fake_on_teardown(hiapi_mock, monkeypatch):
            yield
            monkeypatch.setattr(hiapi_mock.backend, "page", boom)
            httpx.get(hiapi_mock.url + "/v1/tasks", headers=AUTH)


        def test_breaks_it_after_the_body(breaks_the_fake_on_teardown):
            pass


        def test_staged_faults_are_no_errors(hiapi_mock):
            where = {"method": "GET", "path": "/v1/tasks"}
            hiapi_mock.add_rule(match=where, action={"type": "http", "status": 500}, times=1)
            hiapi_mock.add_rule(match=where, action={"type": "drop_connection"}, times=1)
            with httpx.Client(base_url=hiapi_mock.url, headers=AUTH) as client:
                assert client.get("/v1/tasks").status_code == 500
                with pytest.raises(httpx.RemoteProtocolError):
                    client.get("/v1/tasks")
                assert client.get("/v1/tasks").status_code == 200


        def test_the_next_test_starts_clean(hiapi_mock):
            assert httpx.get(hiapi_mock.url + "/v1/tasks", headers=AUTH).status_code == 200
        """
    )
    result.assert_outcomes(passed=3, failed=3, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_user.py::test_breaks_the_fake - RuntimeError('the fake broke')*",
            "FAILED test_user.py::test_fails_by_itself_too - AssertionError: the test's own*",
            "FAILED test_user.py::test_breaks_a_callback_job - RuntimeError('the delivery broke')*",
            "ERROR test_user.py::test_breaks_it_after_the_body - RuntimeError('the fake broke')*",
            "*hiapi-mock: the fake also raised while serving this test:*",
        ]
    )


def test_nothing_starts_unless_a_test_asks(run: Run) -> None:
    result = run(
        """
        def threads():
            return [t.name for t in threading.enumerate() if t.name != "MainThread"]


        def test_one(request):
            assert request.config.pluginmanager.hasplugin("hiapi_mock")
            assert threads() == []


        def test_two():
            assert threads() == []
        """
    )
    result.assert_outcomes(passed=2)


def test_options_set_the_seed_the_profile_and_the_signing_key(
    strict: pytest.Pytester, run: Run
) -> None:
    secret = "whsec_0123456789abcdef"
    strict.makeini(
        STRICT_INI + f"hiapi_mock_profile = instant\nhiapi_mock_webhook_secret = {secret}\n"
    )
    result = run(
        f"""
        def test_configured(hiapi_mock):
            assert hiapi_mock.backend.config.seed == 7
            assert hiapi_mock.webhook_secret == "{secret}"
            with httpx.Client(base_url=hiapi_mock.url, headers=AUTH) as client:
                task_id = client.post("/v1/tasks", json=BODY).json()["data"]["taskId"]
                assert client.get(f"/v1/tasks/{{task_id}}").json()["data"]["status"] == "success"
        """,
        "--hiapi-mock-seed",
        "7",
    )
    result.assert_outcomes(passed=1)


def test_a_profile_that_cannot_work_on_a_manual_clock_is_refused(
    strict: pytest.Pytester, run: Run
) -> None:
    strict.makeini(STRICT_INI + "hiapi_mock_profile = realistic\n")
    result = run(
        """
        def test_configured(hiapi_mock):
            pass
        """
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*hiapi_mock_profile: 'realistic' is not one of fast, instant*"])


def test_the_example_in_the_plugins_docstring_passes(strict: pytest.Pytester) -> None:
    assert pytest_plugin.__doc__ is not None
    example = pytest_plugin.__doc__.split("Example:\n", 1)[1]
    strict.makepyfile(test_example=textwrap.dedent(example))
    strict.runpytest_subprocess(timeout=120).assert_outcomes(passed=1)


# -- the handle, in-process --------------------------------------------------------------------

BODY = {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana"}}


@pytest.fixture
def client(hiapi_mock: HiapiMock) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {hiapi_mock.api_key}"}
    with httpx.Client(base_url=hiapi_mock.url, headers=headers, timeout=10) as client:
        yield client


def create(client: httpx.Client, prompt: str = "a banana", callback: str | None = None) -> str:
    body = {**BODY, "input": {"prompt": prompt}}
    if callback is not None:
        body["callback"] = {"url": callback}
    response = client.post("/v1/tasks", json=body)
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["taskId"]
    return task_id


def test_advance_takes_seconds_or_durations(hiapi_mock: HiapiMock) -> None:
    assert hiapi_mock.clock.now() == DEFAULT_START
    hiapi_mock.advance(90)
    hiapi_mock.advance("30m")
    assert hiapi_mock.clock.now() == DEFAULT_START + 90 + 1800


def test_add_rule_returns_the_rule_and_refuses_a_bad_one(
    hiapi_mock: HiapiMock, client: httpx.Client
) -> None:
    rule = hiapi_mock.add_rule(
        match={"method": "POST", "path": "/v1/tasks"},
        action={"type": "http", "status": 429, "retry_after": 7},
        times=1,
    )
    assert rule == {
        "id": "rule-1",
        "match": {"method": "POST", "path": "/v1/tasks"},
        "action": {
            "type": "http",
            "status": 429,
            "error_code": None,
            "message": None,
            "retry_after": 7,
        },
        "times": 1,
        "used": 0,
    }
    refused = client.post("/v1/tasks", json=BODY)
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "7")
    with pytest.raises(RuleError, match=r"action\.type"):
        hiapi_mock.add_rule(action={"type": "explode"})


def test_wait_for_status_answers_at_once_when_the_outcome_is_known(
    hiapi_mock: HiapiMock, client: httpx.Client
) -> None:
    task_id = create(client)
    hiapi_mock.advance(1)
    assert hiapi_mock.wait_for_status(task_id, "success", timeout=10)
    assert hiapi_mock.wait_for_status(task_id, timeout=10)
    failed = create(client, "[mock:fail]")
    hiapi_mock.advance(1)
    # Ended without passing through success: no point waiting the 10 s.
    assert not hiapi_mock.wait_for_status(failed, "success", timeout=10)


def test_wait_for_status_gives_up_after_its_timeout_on_a_clock_nobody_moves(
    hiapi_mock: HiapiMock, client: httpx.Client
) -> None:
    task_id = create(client)
    assert not hiapi_mock.wait_for_status(task_id, "success", timeout=0.2)


def test_wait_for_status_wakes_when_another_thread_moves_the_clock(
    hiapi_mock: HiapiMock, client: httpx.Client
) -> None:
    task_id = create(client, "[mock:delay=1h]")
    sleepers = hiapi_mock.clock.pending()
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(hiapi_mock.wait_for_status, task_id, "success", 10)
        eventually(lambda: hiapi_mock.clock.pending() > sleepers)
        assert not waiting.done()
        hiapi_mock.advance("1h")
        assert waiting.result(timeout=10)


def test_finish_ends_a_task_and_makes_its_callback(
    hiapi_mock: HiapiMock, client: httpx.Client, hiapi_receiver: CallbackReceiver
) -> None:
    task_id = create(client, "[mock:delay=1h]", callback=hiapi_receiver.url_for("/hooks"))
    task = hiapi_mock.finish(task_id, "fail", "TASK_FAILED", "the GPU caught fire")
    assert task["status"] == "fail"
    assert task["error"] == {"code": "TASK_FAILED", "message": "the GPU caught fire"}
    # finish() returns once the callback is made: no waiting needed.
    [callback] = hiapi_receiver.received
    assert callback.json() == client.get(f"/v1/tasks/{task_id}").json()["data"]
    assert hiapi_mock.wait_for_callback(task_id, timeout=10)
    [attempt] = hiapi_mock.deliveries(task_id)
    assert (attempt.status, attempt.url) == (200, hiapi_receiver.url_for("/hooks"))


def test_wait_for_callback_tells_a_drop_from_a_delivery(
    hiapi_mock: HiapiMock, client: httpx.Client, hiapi_receiver: CallbackReceiver
) -> None:
    dropped = create(client, "[mock:callback=drop]", callback=hiapi_receiver.url_for("/hooks"))
    hiapi_mock.advance(1)
    assert hiapi_mock.wait_for_callback(dropped, timeout=10, delivered=False)
    assert not hiapi_mock.wait_for_callback(dropped, timeout=0.1)
    assert [a.fault for a in hiapi_mock.deliveries()] == ["drop"]
    assert hiapi_receiver.received == []


def test_journal_filters_as_the_control_api_does(
    hiapi_mock: HiapiMock, client: httpx.Client
) -> None:
    task_id = create(client)
    client.get(f"/v1/tasks/{task_id}")
    client.get("/v1/tasks")
    assert [e.method for e in hiapi_mock.journal()] == ["POST", "GET", "GET"]
    assert [e.path for e in hiapi_mock.journal(task=task_id, method="GET")] == [
        f"/v1/tasks/{task_id}"
    ]
    assert len(hiapi_mock.journal(key=hiapi_mock.api_key, limit=2)) == 2
    assert hiapi_mock.journal(key="sk-someone-else") == []


def test_webhook_secret_is_checked_and_used(
    hiapi_mock: HiapiMock, client: httpx.Client, hiapi_receiver: CallbackReceiver
) -> None:
    with pytest.raises(ValueError, match="16 to 256"):
        hiapi_mock.webhook_secret = "short"
    hiapi_mock.webhook_secret = "whsec_0123456789abcdef"
    create(client, callback=hiapi_receiver.url_for("/hooks"))
    hiapi_mock.advance(1)
    [callback] = hiapi_receiver.received
    assert "x-hiapi-signature" in callback.headers


def test_check_raises_what_the_fake_raised_once(
    hiapi_mock: HiapiMock, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> NoReturn:
        raise RuntimeError("inside the fake")

    monkeypatch.setattr(hiapi_mock.backend, "page", boom)
    assert client.get("/v1/tasks").status_code == 500
    with pytest.raises(ExceptionGroup) as raised:
        hiapi_mock.check()
    assert [str(error) for error in raised.value.exceptions] == ["inside the fake"]
    hiapi_mock.check()  # reported once: nothing left for the plugin to fail this test with


def test_a_stopped_fake_says_so_instead_of_hanging() -> None:
    from mock_server.config import MockConfig

    fake = HiapiMock.start(MockConfig(profile="fast"))
    fake.close()
    with pytest.raises(RuntimeError, match="not running"):
        fake.reset()
