"""pytest fixtures for testing your own code against the fake HiAPI.

Installing hiapi-mock registers this plugin (entry point `pytest11`, name `hiapi_mock`). It starts
nothing until a test asks for one of its fixtures; then one fake starts for the whole session, on
a free port on 127.0.0.1 and on a manual clock (time moves only when a test moves it), and it is
reset before every test that uses it.

Fixtures:

- `hiapi_mock`: a `HiapiMock` handle on the fake, reset before the test (tasks, rules, journal,
  deliveries and rate-limit counts forgotten; clock, seed and settings back to the start).
  `url`, `api_key` (`"sk-test"`; any `sk-...` key works), `backend`, `clock`,
  `webhook_secret` (settable for one test), and:
  `advance(seconds)` moves the clock (a number, or `"90s"`, `"30m"`) and returns once the
  callbacks then due have been made; `add_rule(match=..., action=..., times=...)` adds a rule in
  the control API's JSON form and returns it; `finish(task_id, status, code, message)` ends a
  task now; `wait_for_status(task_id, status="terminal", timeout=10)` and
  `wait_for_callback(task_id, timeout=10)` wait, at most `timeout` wall seconds, and say whether
  it happened (the clock does not move by itself: they are for code running in another thread);
  `journal(path=, task=, key=, method=, limit=)` and `deliveries(task_id=None)` read what the
  fake received and sent. An unexpected exception inside the fake while it serves the test (a
  500 that no rule staged, or a failed callback job) fails that test with the fake's traceback.
- `hiapi_base_url`, `hiapi_api_key`: `hiapi_mock.url` and `hiapi_mock.api_key`.
- `hiapi_receiver`: a started `CallbackReceiver`, a real HTTP server that records every callback
  (exact bytes and headers) and can `fail_next(n)` or `stall_next(n)`; stopped after the test.
  Give tasks `"callback": {"url": hiapi_receiver.url_for("/hooks")}`.
- `hiapi_mock_session`: the same handle at session scope, never reset, for your own
  session-scoped fixtures that only need to know where the fake is.

Options: `--hiapi-mock-seed N` (default 0) reproduces ids, timings and images;
`--hiapi-mock-profile fast|instant` or the ini option `hiapi_mock_profile` (default `fast`: a task
ends within 0.5 s of the fake's clock; `instant`: at creation); the ini option
`hiapi_mock_webhook_secret` signs every callback (default: unsigned, as an account without a
signing key). Rate limits are off.

Example:

    import httpx


    def test_a_failed_task_reports_its_code(hiapi_mock):
        hiapi_mock.add_rule(action={"type": "outcome", "status": "fail", "code": "TASK_FAILED"})
        headers = {"Authorization": f"Bearer {hiapi_mock.api_key}"}
        body = {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana"}}
        with httpx.Client(base_url=hiapi_mock.url, headers=headers) as client:
            task_id = client.post("/v1/tasks", json=body).json()["data"]["taskId"]
            hiapi_mock.advance(1)  # a "fast" task ends within 0.5 s of the fake's clock
            task = client.get(f"/v1/tasks/{task_id}").json()["data"]
        assert task["status"] == "fail"
        assert task["error"]["code"] == "TASK_FAILED"
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import traceback
from collections.abc import Callable, Coroutine, Generator, Iterator, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from .backend import Backend
    from .clock import ManualClock
    from .config import MockConfig
    from .delivery import Attempt
    from .journal import JournalEntry
    from .receiver import CallbackReceiver
    from .server import ServerThread

# The fake's own modules are imported when a test first asks for it: this module is loaded by
# every pytest run in an environment where hiapi-mock is installed.

__all__ = ["DEFAULT_API_KEY", "HiapiMock"]

DEFAULT_API_KEY = "sk-test"
#: Profiles that suit a manual clock. `realistic` makes every create wait 0.2 s of the fake's
#: clock before answering, which on a clock nobody advances is forever.
_PROFILES = ("fast", "instant")
_WAIT = 10.0  # bound of every wait the handle does on its own, wall seconds
_HOP = 5.0  # allowance over a wait's own timeout for reaching the server's event loop
_SCHEDULER_LOG = "hiapi_mock.scheduler"
_IN_USE = pytest.StashKey["HiapiMock"]()

T = TypeVar("T")


class HiapiMock:
    """The session's fake as a test sees it: where it is, its state, and ways to move it along.

    Every method is a thin call on `backend` (the same operations as the `/_mock` control API).
    Methods that change state run on the server's event loop, between requests.
    """

    api_key: str = DEFAULT_API_KEY

    def __init__(self, app: Starlette, server: ServerThread, clock: ManualClock) -> None:
        self.app = app
        self.backend: Backend = app.state.backend
        self.clock = clock
        self._server = server
        self._pristine = copy.deepcopy(self.backend.config)
        self._errors = _Errors()
        self._job_failures = _JobFailures(self._errors)

    @classmethod
    def start(cls, config: MockConfig) -> HiapiMock:
        """Serve a fake with `config` on a manual clock, on a free port on 127.0.0.1."""
        from .app import create_app
        from .clock import ManualClock
        from .server import ServerThread

        clock = ManualClock()
        app = create_app(config, clock=clock)
        backend: Backend = app.state.backend
        server = ServerThread(app, "127.0.0.1")
        fake = cls(app, server, clock)
        _trap_errors(app, fake._errors)
        try:
            server.start()
        except BaseException:
            backend.close()
            raise
        logging.getLogger(_SCHEDULER_LOG).addHandler(fake._job_failures)
        return fake

    def close(self) -> None:
        logging.getLogger(_SCHEDULER_LOG).removeHandler(self._job_failures)
        self._server.stop()
        self.backend.close()

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:54321` (no trailing slash)."""
        return self._server.url

    @property
    def webhook_secret(self) -> str | None:
        """The key that signs callbacks (None: unsigned). Set it to sign in one test; `reset()`
        restores the session's value (the ini option `hiapi_mock_webhook_secret`)."""
        return self.backend.config.webhook_secret

    @webhook_secret.setter
    def webhook_secret(self, secret: str | None) -> None:
        from .signing import check_secret

        self.backend.config.webhook_secret = None if secret is None else check_secret(secret)

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every task, rule, request, delivery and server error; the clock, the seed and
        the settings start again."""
        self._call(self._reset_now)
        self._errors.take()

    def _reset_now(self) -> None:
        config, pristine = self.backend.config, copy.deepcopy(self._pristine)
        for field in fields(config):
            setattr(config, field.name, getattr(pristine, field.name))
        self.backend.reset()

    def add_rule(
        self,
        *,
        action: Mapping[str, Any],
        match: Mapping[str, Any] | None = None,
        times: int | None = None,
    ) -> dict[str, Any]:
        """Add a rule, written as for `POST /_mock/rules`; returns it as the control API does.
        E.g. `match={"method": "POST", "path": "/v1/tasks"}`,
        `action={"type": "http", "status": 429, "retry_after": 7}`, `times=3`."""
        rule = self.backend.rules.add_json({"match": match or {}, "action": action, "times": times})
        return rule.to_json()

    def finish(
        self,
        task_id: str,
        status: str = "success",
        code: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """End a task now (`success`, or `fail` with an error code and message); returns the
        task as GET shows it, once its callback, if any, has been made."""
        task = self._call(lambda: self.backend.finish_task(task_id, status, code, message))
        self.backend.callbacks.wait_idle(_WAIT)
        return task

    # -- time ----------------------------------------------------------------------------------

    def advance(self, seconds: float | str) -> None:
        """Move the fake's clock forward (seconds, or a duration such as `"90s"` or `"30m"`);
        return once every callback (and retry) then due has been made."""
        from .rules import parse_duration

        self.clock.advance(parse_duration(seconds) if isinstance(seconds, str) else seconds)
        self.backend.callbacks.wait_idle(_WAIT)

    def wait_for_status(
        self, task_id: str, status: str = "terminal", timeout: float = _WAIT
    ) -> bool:
        """Whether the task is in `status` or past it (`terminal`: ended), waiting at most
        `timeout` wall seconds for another thread to move the clock or finish the task.
        False at once when the task ended without passing through `status`."""
        return self._wait(self.backend.wait_for_status(task_id, status, timeout), timeout)

    def wait_for_callback(
        self, task_id: str, timeout: float = _WAIT, *, delivered: bool = True
    ) -> bool:
        """Whether the task's callback was delivered (a 2xx answer; with `delivered=False`,
        merely attempted or dropped), waiting at most `timeout` wall seconds."""
        return self._wait(
            self.backend.callbacks.wait_for(task_id, timeout, delivered=delivered), timeout
        )

    # -- what happened -------------------------------------------------------------------------

    def journal(
        self,
        *,
        path: str | None = None,
        task: str | None = None,
        key: str | None = None,
        method: str | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        """The requests the fake answered (not the control API's), oldest first; filters as
        `GET /_mock/journal`: exact path, task id, API key, method, and the newest `limit`."""
        return self.backend.journal.entries(
            path=path, task=task, key=key, method=method, limit=limit
        )

    def deliveries(self, task_id: str | None = None) -> list[Attempt]:
        """Every callback attempt (and deliberate drop), oldest first; of one task if given."""
        callbacks = self.backend.callbacks
        return callbacks.log if task_id is None else callbacks.for_task(task_id)

    def check(self) -> None:
        """Raise, as one `ExceptionGroup`, the unexpected exceptions raised inside the fake since
        the last check or reset; the plugin calls this after every test that uses the fake."""
        errors = self._errors.take()
        if errors:
            count = f"{len(errors)} unexpected error{'s' if len(errors) > 1 else ''}"
            raise ExceptionGroup(f"hiapi-mock: {count} inside the fake", errors)

    def _annotate(self, failure: BaseException) -> None:
        """Add the fake's exceptions to a test's own failure, as notes."""
        for error in self._errors.take():
            trace = "".join(traceback.format_exception(error)).rstrip()
            failure.add_note(f"hiapi-mock: the fake also raised while serving this test:\n{trace}")

    # -- running on the server's loop ----------------------------------------------------------

    def _call(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self._on_loop(call(), _WAIT)

    def _wait(self, waiting: Coroutine[Any, Any, bool], timeout: float) -> bool:
        return self._on_loop(waiting, timeout + _HOP)

    def _on_loop(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._server.loop
        if loop is None or loop.is_closed():
            work.close()
            raise RuntimeError("hiapi-mock: the fake's server is not running")
        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise


class _Errors:
    """Exceptions raised inside the fake, kept for the test being served. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: list[Exception] = []

    def add(self, error: Exception) -> None:
        with self._lock:
            if all(error is not kept for kept in self._errors):
                self._errors.append(error)

    def take(self) -> list[Exception]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors


class _JobFailures(logging.Handler):
    """Keeps the exception of every scheduled job (a callback delivery) that failed: the
    scheduler logs it and carries on, so nothing else would tell the test."""

    def __init__(self, errors: _Errors) -> None:
        super().__init__(logging.ERROR)
        self._errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, Exception):
            self._errors.add(error)


def _trap_errors(app: Starlette, errors: _Errors) -> None:
    """Keep every exception the app answers with a 500, except deliberate ones.

    Starlette hands an unhandled exception to the app's `Exception` handler before the 500 goes
    out, so the error is kept before the client can see the answer: the test that got it always
    finds it. A 500 staged by a rule is an answer, not an exception, and is not kept.
    """
    from starlette.requests import ClientDisconnect
    from starlette.responses import PlainTextResponse, Response

    from .middleware import ConnectionDropped

    handlers = app.exception_handlers
    # Starlette serves 500s with the last handler registered for 500 or Exception.
    answers = [handler for key, handler in handlers.items() if key in (500, Exception)]
    answer = answers[-1] if answers else None

    async def keep_then_answer(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ConnectionDropped | ClientDisconnect):
            errors.add(exc)
        if answer is None:
            return PlainTextResponse("Internal Server Error", status_code=500)
        response = answer(request, exc)
        return response if isinstance(response, Response) else await response

    handlers.pop(500, None)
    handlers[Exception] = keep_then_answer


def _config(pytestconfig: pytest.Config) -> MockConfig:
    from .config import MockConfig

    profile = pytestconfig.getoption("hiapi_mock_profile") or pytestconfig.getini(
        "hiapi_mock_profile"
    )
    if profile not in _PROFILES:
        raise pytest.UsageError(
            f"hiapi_mock_profile: {profile!r} is not one of {', '.join(_PROFILES)}"
        )
    secret = pytestconfig.getini("hiapi_mock_webhook_secret") or None
    seed: int = pytestconfig.getoption("hiapi_mock_seed")
    try:
        return MockConfig(seed=seed, profile=profile, rate_limit=False, webhook_secret=secret)
    except ValueError as exc:
        raise pytest.UsageError(f"hiapi-mock: {exc}") from None


# -- pytest hooks and fixtures -----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hiapi-mock", "the fake HiAPI server of the hiapi_mock fixtures")
    group.addoption(
        "--hiapi-mock-seed",
        dest="hiapi_mock_seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the fake's ids, timings and images (default 0)",
    )
    group.addoption(
        "--hiapi-mock-profile",
        dest="hiapi_mock_profile",
        choices=_PROFILES,
        default=None,
        help="task timings of the fake (default: the ini option hiapi_mock_profile, or fast)",
    )
    parser.addini(
        "hiapi_mock_profile", "task timings of the fake: fast (default) or instant", default="fast"
    )
    parser.addini(
        "hiapi_mock_webhook_secret",
        "sign the fake's callbacks with this key (16 to 256 characters; default: unsigned)",
        default="",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail a test that made the fake raise, or add the fake's errors to its own failure."""
    try:
        yield
    except BaseException as failure:
        fake = item.stash.get(_IN_USE, None)
        if fake is not None:
            fake._annotate(failure)
        raise
    fake = item.stash.get(_IN_USE, None)
    if fake is not None:
        fake.check()


@pytest.fixture(scope="session")
def hiapi_mock_session(pytestconfig: pytest.Config) -> Iterator[HiapiMock]:
    """The session's fake, never reset: for your own session-scoped fixtures that need its
    URL. Tests should use `hiapi_mock`."""
    fake = HiapiMock.start(_config(pytestconfig))
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def hiapi_mock(
    hiapi_mock_session: HiapiMock, request: pytest.FixtureRequest
) -> Iterator[HiapiMock]:
    """The fake HiAPI, reset for this test, on a manual clock (see `HiapiMock`)."""
    fake = hiapi_mock_session
    fake.reset()
    request.node.stash[_IN_USE] = fake
    yield fake
    del request.node.stash[_IN_USE]
    fake.check()  # what went wrong after the test's body, e.g. in a fixture's teardown


@pytest.fixture
def hiapi_base_url(hiapi_mock: HiapiMock) -> str:
    """The fake's base URL, e.g. `http://127.0.0.1:54321`."""
    return hiapi_mock.url


@pytest.fixture
def hiapi_api_key(hiapi_mock: HiapiMock) -> str:
    """An API key the fake accepts (`sk-test`)."""
    return hiapi_mock.api_key


@pytest.fixture
def hiapi_receiver() -> Iterator[CallbackReceiver]:
    """A started callback receiver on a free port on 127.0.0.1, stopped after the test."""
    from .receiver import CallbackReceiver

    with CallbackReceiver() as receiver:
        yield receiver
