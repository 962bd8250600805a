"""Fixtures of the client's tests.

Unit tests: a fake clock and a factory for either client over a scripted transport (`support`).

Property, stateful and README tests: the fake (`mock_server`) on a `ManualClock`, reached
in-process (`httpx.ASGITransport`, async client only) or through a real uvicorn server, and a
client wired to it whose `sleep` *advances the fake's clock* instead of sleeping: a
`Retry-After` or a poll interval costs no wall time, and every sleep is logged beside every
request and answer, so the tests can hold the client to what it was told.

Hypothesis profiles (`HYPOTHESIS_PROFILE` picks one; else `ci` when `CI` is set; else `dev`):

- `dev`: few examples, quick feedback while editing;
- `ci`: derandomized, no deadline (HTTP), no example database, `print_blob`, enough examples
  that the stateful tests meet every fault many times;
- `live`: for `test_live.py` (real money): one example, no shrinking.
"""

from __future__ import annotations

import functools
import os
import random
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from client import AsyncHiAPIClient, HiAPIClient, Task, TaskOutput
from client.receiver import CallbackReceiver
from mock_server.app import create_app
from mock_server.backend import Backend
from mock_server.catalog import Profile, Timing
from mock_server.clock import ManualClock
from mock_server.config import MockConfig
from mock_server.server import ServerThread

from .support import Api, FakeClock, Script, make_async, make_sync

# -- Hypothesis profiles ------------------------------------------------------------------------

#: Examples per cheap property test in each profile; costlier tests run a share of them
#: (`scaled_examples`).
EXAMPLES = {"dev": 12, "ci": 120, "live": 1}

settings.register_profile("dev", max_examples=EXAMPLES["dev"], deadline=None)
# Registering `ci` replaces Hypothesis's built-in profile of that name.
settings.register_profile(
    "ci",
    max_examples=EXAMPLES["ci"],
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],  # as the built-in `ci` profile does
)
settings.register_profile(
    "live",
    max_examples=EXAMPLES["live"],
    phases=(Phase.explicit, Phase.generate),  # no reuse, no shrinking: every call costs money
    deadline=None,
    database=None,
    print_blob=True,
)


def chosen_profile(config: pytest.Config | None = None) -> str:
    """`--hypothesis-profile`, else `HYPOTHESIS_PROFILE`, else `ci` under CI, else `dev`."""
    given = config.getoption("hypothesis_profile", None) if config is not None else None
    return str(
        given or os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    )


settings.load_profile(chosen_profile())


def scaled_examples(fraction: float, minimum: int = 2) -> int:
    """A share of the loaded profile's `max_examples`, for tests whose examples cost more."""
    return max(minimum, round(settings().max_examples * fraction))


def pytest_configure(config: pytest.Config) -> None:
    settings.load_profile(chosen_profile(config))
    # Until pyproject.toml registers it (--strict-markers refuses unknown marks).
    config.addinivalue_line(
        "markers", "live: calls the live HiAPI (needs HIAPI_API_KEY; creates billable tasks)"
    )


# -- the unit tests' fixtures -------------------------------------------------------------------

MakeApi = Callable[..., Api]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sync", "async"])
def make_api(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[MakeApi]:
    """`make_api(script, **client_options)`: the client under test, sync or async."""
    made: list[Api] = []

    def make(script: Script, **options: Any) -> Api:
        factory = make_sync if request.param == "sync" else make_async
        api = factory(script, clock, **options)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


# -- the fake, and what the client did to it ----------------------------------------------------

API_KEY = "sk-test-client-properties"
WEBHOOK_SECRET = "whsec-client-properties-0123456789"
#: Every task: 1 s queued, 10 s handling, 2 s archiving (of the fake's clock).
TIMING = Timing(queued=1.0, handling=10.0, archiving=2.0)
#: The in-process fake's origin (never resolved: ASGITransport answers every host).
ASGI_BASE_URL = "http://hiapi.test"
#: Wall-clock bound of any single HTTP exchange in these tests.
HTTP_TIMEOUT = 10.0
#: The client kinds, as `<client>-<how the fake is reached>`.
KINDS = ("sync-uvicorn", "async-asgi", "async-uvicorn")


@dataclass(frozen=True, slots=True)
class Sent:
    method: str
    path: str
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class Answered:
    method: str
    path: str
    status: int
    retry_after: str | None


@dataclass(frozen=True, slots=True)
class Failed:
    """No answer reached the client (a dropped connection, or a response lost on purpose)."""

    method: str
    path: str
    error: str


@dataclass(frozen=True, slots=True)
class Slept:
    seconds: float


Event = Sent | Answered | Failed | Slept


class EventLog:
    """Requests, answers, failures and sleeps, in the order the client met them; and a switch
    that loses the answers of the next creates after the fake made them (the worst network
    failure: the task exists, the client never hears of it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []
        self.lose_creates = 0

    def add(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, mark: int) -> list[Event]:
        with self._lock:
            return self.events[mark:]

    def take_lost_create(self, request: httpx.Request) -> bool:
        with self._lock:
            if self.lose_creates and request.method == "POST" and request.url.path == "/v1/tasks":
                self.lose_creates -= 1
                return True
            return False

    def reset(self) -> None:
        with self._lock:
            self.events.clear()
            self.lose_creates = 0


def _sent(request: httpx.Request) -> Sent:
    return Sent(request.method, request.url.path, request.headers.get("idempotency-key"))


def _answered(request: httpx.Request, response: httpx.Response) -> Answered:
    return Answered(
        request.method, request.url.path, response.status_code, response.headers.get("retry-after")
    )


def _failed(request: httpx.Request, error: BaseException) -> Failed:
    return Failed(request.method, request.url.path, type(error).__name__)


def _lost(request: httpx.Request) -> httpx.ReadError:
    return httpx.ReadError("the answer was lost on purpose (test)", request=request)


class RecordingTransport(httpx.BaseTransport):
    """Logs every exchange; reads the body here so a connection cut mid-answer is a failure."""

    def __init__(self, inner: httpx.BaseTransport, log: EventLog) -> None:
        self.inner = inner
        self.log = log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.log.add(_sent(request))
        try:
            response = self.inner.handle_request(request)
            response.read()
        except httpx.HTTPError as exc:
            self.log.add(_failed(request, exc))
            raise
        if self.log.take_lost_create(request):
            response.close()
            self.log.add(Failed(request.method, request.url.path, "lost"))
            raise _lost(request)
        self.log.add(_answered(request, response))
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncRecordingTransport(httpx.AsyncBaseTransport):
    """`RecordingTransport` for the async client."""

    def __init__(self, inner: httpx.AsyncBaseTransport, log: EventLog) -> None:
        self.inner = inner
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.log.add(_sent(request))
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
        except httpx.HTTPError as exc:
            self.log.add(_failed(request, exc))
            raise
        if self.log.take_lost_create(request):
            await response.aclose()
            self.log.add(Failed(request.method, request.url.path, "lost"))
            raise _lost(request)
        self.log.add(_answered(request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


#: httpx errors raised before a request leaves the machine.
NEVER_SENT = frozenset({"LocalProtocolError", "ConnectError", "UnsupportedProtocol"})


class ClientTime:
    """The client's `clock` and `sleep`: the fake's manual clock, moved by each sleep."""

    def __init__(self, clock: ManualClock, log: EventLog) -> None:
        self.clock = clock
        self.log = log

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"the client asked to sleep {seconds} s"
        self.log.add(Slept(seconds))
        self.clock.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def retry_after_violations(events: list[Event]) -> list[str]:
    """Each time the client asked again sooner than a `Retry-After` it had just been given."""
    problems: list[str] = []
    owed: tuple[Answered, float] | None = None
    slept = 0.0
    for event in events:
        if isinstance(event, Slept):
            slept += event.seconds
        elif isinstance(event, Sent):
            if owed is not None and slept < owed[1]:
                answer = owed[0]
                problems.append(
                    f"{event.method} {event.path} sent {slept:g} s after {answer.status} "
                    f"with Retry-After: {answer.retry_after}"
                )
            owed, slept = None, 0.0
        elif isinstance(event, Answered) and event.retry_after is not None:
            owed, slept = (event, float(event.retry_after)), 0.0
    return problems


# -- the fake --------------------------------------------------------------------------------


def fake_config(**overrides: Any) -> MockConfig:
    """Seed 1, fixed 1 s / 10 s / 2 s tasks, callbacks signed with `WEBHOOK_SECRET`."""
    options: dict[str, Any] = {
        "seed": 1,
        "profile": Profile("fixed", fixed=TIMING),
        "webhook_secret": WEBHOOK_SECRET,
    }
    options.update(overrides)
    return MockConfig(**options)


@dataclass
class FakeHiAPI:
    """One fake on a manual clock; `server` is set when it is served by uvicorn."""

    backend: Backend
    clock: ManualClock
    app: Starlette
    server: ServerThread | None

    @property
    def base_url(self) -> str:
        return self.server.url if self.server is not None else ASGI_BASE_URL

    def task(self, task_id: str) -> Task:
        """The task as the fake holds it now, read past every staged fault."""
        return Task.from_dict(self.backend.task(API_KEY, task_id))

    def tasks(self) -> set[str]:
        return {t.task_id for t in self.backend.store.newest(API_KEY, 0, 1_000_000)}

    def posts(self) -> int:
        """POST /v1/tasks requests the fake's journal holds."""
        return len(self.backend.journal.entries(method="POST", path="/v1/tasks"))

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.backend.close()


def start_fake(config: MockConfig | None = None, *, serve: bool) -> FakeHiAPI:
    clock = ManualClock()
    backend = Backend(config or fake_config(), clock=clock)
    app = create_app(backend=backend)
    server = ServerThread(app).start() if serve else None
    return FakeHiAPI(backend, clock, app, server)


# -- callback receivers -----------------------------------------------------------------------


class HookServer:
    """One uvicorn server for the user's callback receivers: `/hooks/<name>/...` goes to the
    receiver registered as `name`, so a late delivery of an earlier example reaches that
    example's receiver, never the current one."""

    def __init__(self) -> None:
        self._apps: dict[str, Starlette] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        #: What the receivers raised (an ASGI app should not raise at all).
        self.errors: list[Exception] = []

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            parts = str(scope.get("path", "")).split("/")
            app = self._apps.get(parts[2]) if len(parts) > 2 and parts[1] == "hooks" else None
            if app is None:
                await _not_found(send)
                return
            with self._lock:
                self._in_flight += 1
            try:
                await app(scope, receive, send)  # returns once its background handler is done
            except Exception as exc:  # kept for the test to judge, out of uvicorn's error log
                self.errors.append(exc)
            finally:
                with self._lock:
                    self._in_flight -= 1

        self.server = ServerThread(dispatch)

    @property
    def in_flight(self) -> int:
        """Deliveries being answered or handled right now."""
        with self._lock:
            return self._in_flight

    def start(self) -> HookServer:
        self.server.start()
        return self

    def mount(self, name: str, app: Starlette) -> str:
        """Serve `app` under `/hooks/<name>`; returns its callback URL."""
        self._apps[name] = app
        return f"{self.server.url}/hooks/{name}/callback"

    def stop(self) -> None:
        self.server.stop()


async def _not_found(send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class Handler:
    """The user's callback handler: counts the calls per task (it must run once per task)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.tasks: dict[str, Task] = {}

    async def __call__(self, task: Task) -> None:
        with self._lock:
            self.calls[task.task_id] += 1
            self.tasks[task.task_id] = task


# -- one face for both clients ---------------------------------------------------------------

T = TypeVar("T")


class Driver(Protocol):
    """What the property and stateful tests call, whichever client is behind it."""

    def create(self, model: str, input: Mapping[str, Any], **options: Any) -> str: ...
    def retrieve(self, task_id: str) -> Task: ...
    def wait(self, task_id: str, **options: Any) -> Task: ...
    def run(self, model: str, input: Mapping[str, Any], **options: Any) -> Task: ...
    def download(self, output: TaskOutput) -> bytes: ...
    def close(self) -> None: ...


class SyncDriver:
    def __init__(self, client: HiAPIClient) -> None:
        self.client = client

    def create(self, model: str, input: Mapping[str, Any], **options: Any) -> str:
        return self.client.create(model, input, **options)

    def retrieve(self, task_id: str) -> Task:
        return self.client.retrieve(task_id)

    def wait(self, task_id: str, **options: Any) -> Task:
        return self.client.wait(task_id, **options)

    def run(self, model: str, input: Mapping[str, Any], **options: Any) -> Task:
        return self.client.run(model, input, **options)

    def download(self, output: TaskOutput) -> bytes:
        return self.client.download(output)

    def close(self) -> None:
        self.client.close()


class AsyncDriver:
    """Every call runs on one long-lived event loop (a blocking portal), so connections pooled
    by the async client stay on the loop that opened them."""

    def __init__(self, client: AsyncHiAPIClient, portal: anyio.from_thread.BlockingPortal) -> None:
        self.client = client
        self.portal = portal

    def _call(self, function: Callable[..., Awaitable[T]], *args: Any, **options: Any) -> T:
        return self.portal.call(functools.partial(function, *args, **options))

    def create(self, model: str, input: Mapping[str, Any], **options: Any) -> str:
        return self._call(self.client.create, model, input, **options)

    def retrieve(self, task_id: str) -> Task:
        return self._call(self.client.retrieve, task_id)

    def wait(self, task_id: str, **options: Any) -> Task:
        return self._call(self.client.wait, task_id, **options)

    def run(self, model: str, input: Mapping[str, Any], **options: Any) -> Task:
        return self._call(self.client.run, model, input, **options)

    def download(self, output: TaskOutput) -> bytes:
        async def bytes_of() -> bytes:
            return await self.client.download(output)

        return self.portal.call(bytes_of)

    def close(self) -> None:
        self.portal.call(self.client.aclose)


@dataclass
class Harness:
    """A fake, two clients wired to it (with and without automatic Idempotency-Keys), the
    log of what they did, and where the user's callback receivers live."""

    kind: str
    fake: FakeHiAPI
    log: EventLog
    time: ClientTime
    api: Driver
    api_without_keys: Driver
    hooks: HookServer
    examples: int = 0
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def real_server(self) -> bool:
        return self.fake.server is not None

    def reset(self) -> None:
        """Start an example afresh: the fake (tasks, rules, journal, clock), the log."""
        self.fake.backend.reset()
        self.log.reset()
        self.hooks.errors.clear()
        self.examples += 1

    def posts(self) -> int:
        """POST /v1/tasks the fake journalled, read once it has journalled each one that
        reached it (the journal is written just after the answer goes out)."""
        reached = sum(
            1
            for event in self.log.events
            if isinstance(event, Answered | Failed)
            and (event.method, event.path) == ("POST", "/v1/tasks")
            and not (isinstance(event, Failed) and event.error in NEVER_SENT)
        )
        eventually(lambda: self.fake.posts() >= reached, what="the fake journals every POST")
        return self.fake.posts()

    def receiver(self, handler: Handler) -> tuple[str, CallbackReceiver]:
        """A fresh `callback_app` receiver for this example, verifying the fake's signature
        against the fake's clock; returns its callback URL and its state."""
        receiver = CallbackReceiver(handler, secret=WEBHOOK_SECRET, clock=self.fake.clock.now)
        return self.hooks.mount(f"example-{self.examples}", receiver.app), receiver

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()


def make_harness(kind: str, hooks: HookServer, portal: anyio.from_thread.BlockingPortal) -> Harness:
    client_kind, _, reach = kind.partition("-")
    fake = start_fake(serve=reach == "uvicorn")
    log = EventLog()
    time = ClientTime(fake.clock, log)
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "api_key": API_KEY,
        "timeout": HTTP_TIMEOUT,
        "clock": time.now,
    }

    def driver(auto_idempotency_key: bool, seed: int) -> Driver:
        extra = {**options, "auto_idempotency_key": auto_idempotency_key}
        extra["rng"] = random.Random(seed)
        if client_kind == "sync":
            transport = RecordingTransport(httpx.HTTPTransport(), log)
            return SyncDriver(HiAPIClient(transport=transport, sleep=time.sleep, **extra))
        inner: httpx.AsyncBaseTransport = (
            httpx.ASGITransport(app=fake.app) if reach == "asgi" else httpx.AsyncHTTPTransport()
        )
        async_transport = AsyncRecordingTransport(inner, log)
        client = AsyncHiAPIClient(transport=async_transport, sleep=time.asleep, **extra)
        return AsyncDriver(client, portal)

    api, api_without_keys = driver(True, 1), driver(False, 2)
    closers = [fake.close, api.close, api_without_keys.close]
    return Harness(kind, fake, log, time, api, api_without_keys, hooks, _closers=closers)


@pytest.fixture(scope="module")
def portal() -> Iterator[anyio.from_thread.BlockingPortal]:
    """One event loop in a thread, for every async client of the module."""
    with anyio.from_thread.start_blocking_portal() as running:
        yield running


@pytest.fixture(scope="module")
def hooks() -> Iterator[HookServer]:
    server = HookServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=KINDS)
def harness(
    request: pytest.FixtureRequest, hooks: HookServer, portal: anyio.from_thread.BlockingPortal
) -> Iterator[Harness]:
    """The fake and both clients of one kind (`sync-uvicorn`, `async-asgi`, `async-uvicorn`)."""
    made = make_harness(str(request.param), hooks, portal)
    yield made
    made.close()


def eventually(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait until `condition()` holds, at most `timeout` wall seconds (never a bare sleep)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.002)):
        if condition():
            return
        pause.wait(0.002)
    raise AssertionError(f"not within {timeout} s: {what or condition}")


def replace_url(callback: Mapping[str, Any], url: str) -> dict[str, Any]:
    """A drawn callback object, pointed at a local receiver (the fake delivers for real)."""
    return {**dict(callback), "url": url}
