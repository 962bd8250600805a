"""Running a client through scenarios against a fake, and grading what the fake observed.

The Python API of `hiapi-mock grade`:

    from mock_server.grading import grade

    report = grade(["./my-client.sh"], "happy_path,rate_limited_create")
    assert report.ok, render_table(report)

`grade` accepts a command (a list of arguments), a Python callable taking the contract's
environment and returning an exit status, or any `ClientUnderTest`. One fake serves the whole
run on a free 127.0.0.1 port; before each scenario it is reset, its clock set to the scenario's
speed, and the scenario staged on it.

The client contract (what every client under test is given, as environment variables):

- `HIAPI_BASE_URL`, `HIAPI_API_KEY`: where the API is and the key to send;
- `HIAPI_TASK`: the create body to send, as JSON (`HIAPI_MODEL` and `HIAPI_PROMPT`: its model
  and prompt, for clients that build the body themselves);
- `HIAPI_OUTPUT_DIR`: an empty folder to save the output file(s) in;
- in callback scenarios only, `HIAPI_CALLBACK_PORT` and `HIAPI_CALLBACK_URL`: serve a receiver
  on 127.0.0.1 at that port before creating the task, and send that URL as `callback.url`.

The client creates one task, follows it to its end, saves the output in `HIAPI_OUTPUT_DIR` and
exits 0; it exits non-zero when the task fails, the create is refused or the output cannot be
fetched.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType

from ..app import create_app
from ..backend import Backend
from ..clock import RealClock
from ..config import MockConfig
from ..server import ServerThread, free_port
from ..store import MemoryStore, TaskRecord
from .clients import ClientFunction, ClientUnderTest, as_client
from .grades import grade_all
from .observe import Execution, Observation, task_of
from .results import GradeReport, ScenarioResult
from .scenarios import MODEL, PROMPT, Hook, Scenario, Stage, select, task_body

__all__ = ["DEFAULT_TIMEOUT", "GradingFake", "client_env", "grade", "run_scenario"]

#: Wall seconds a client may take for one scenario before it is stopped.
DEFAULT_TIMEOUT = 30.0
#: Wall seconds to let deliveries already under way finish once the client has exited.
_SETTLE = 2.0
CALLBACK_PATH = "/hiapi/callback"


class _WatchedStore(MemoryStore):
    """The memory store, calling hooks as each task is stored (a scenario's `on_create`)."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Hook] = []

    def add(self, task: TaskRecord) -> None:
        super().add(task)
        for hook in list(self.hooks):
            hook(task)


class GradingFake:
    """The fake a grading run talks to: one uvicorn server on a free 127.0.0.1 port, on a real
    clock whose speed each scenario sets, with rate limits off (the grades judge the pace)."""

    def __init__(self, *, seed: int = 0, api_key: str | None = None) -> None:
        self.seed = seed
        self.api_key = api_key or f"sk-grade-{secrets.token_hex(8)}"
        self.clock = RealClock()
        self.store = _WatchedStore()
        config = MockConfig(seed=seed, profile="fast", rate_limit=False)
        self.backend = Backend(config, clock=self.clock, store=self.store)
        self.server = ServerThread(create_app(backend=self.backend))
        self._running = False

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> GradingFake:
        self.server.start()
        self._running = True
        return self

    def close(self) -> None:
        if self._running:
            self.server.stop()
            self._running = False
        self.backend.close()

    def __enter__(self) -> GradingFake:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stage(self, scenario: Scenario) -> Stage:
        """Reset the fake, set the scenario's clock speed and stage its condition."""
        self.backend.reset()
        self.store.hooks.clear()
        self.clock.set_speed(scenario.speed)
        stage = Stage(self.backend, self.clock, self.seed, on_create=self.store.hooks)
        scenario.stage(stage)
        return stage


def client_env(
    fake: GradingFake, output_dir: Path, callback_port: int | None = None
) -> dict[str, str]:
    """The variables of the grading contract, for one scenario."""
    env = {
        "HIAPI_BASE_URL": fake.url,
        "HIAPI_API_KEY": fake.api_key,
        "HIAPI_MODEL": MODEL,
        "HIAPI_PROMPT": PROMPT,
        "HIAPI_TASK": task_body(),
        "HIAPI_OUTPUT_DIR": str(output_dir),
    }
    if callback_port is not None:
        env["HIAPI_CALLBACK_PORT"] = str(callback_port)
        env["HIAPI_CALLBACK_URL"] = f"http://127.0.0.1:{callback_port}{CALLBACK_PATH}"
    return env


def run_scenario(
    fake: GradingFake,
    scenario: Scenario,
    client: ClientUnderTest,
    *,
    workdir: Path,
    timeout: float = DEFAULT_TIMEOUT,
) -> ScenarioResult:
    """Stage `scenario`, run the client once in it, and grade what the fake observed."""
    stage = fake.stage(scenario)
    folder = workdir / scenario.name
    output_dir = folder / "output"
    output_dir.mkdir(parents=True)
    port = free_port() if scenario.callbacks else None
    started = fake.clock.now()
    execution = client.run(client_env(fake, output_dir, port), timeout, folder)
    ended = fake.clock.now()
    fake.backend.callbacks.scheduler.settle(_SETTLE)
    observation = observe(fake, scenario, stage, (started, ended), execution, output_dir, timeout)
    return ScenarioResult(
        scenario,
        execution,
        tuple(grade_all(observation)),
        len(observation.requests),
        len(observation.deliveries),
    )


def observe(
    fake: GradingFake,
    scenario: Scenario,
    stage: Stage,
    span: tuple[float, float],
    execution: Execution,
    output_dir: Path,
    timeout: float,
) -> Observation:
    """What the fake's journal, delivery log and store hold after the client ran."""
    backend: Backend = fake.backend
    requests = tuple(backend.journal.entries())
    ids = dict.fromkeys(task_of(e) for e in requests)
    tasks = {i: task for i in ids if i and (task := backend.store.get(i)) is not None}
    outputs = tuple(
        (path.name, path.stat().st_size) for path in sorted(output_dir.iterdir()) if path.is_file()
    )
    return Observation(
        scenario=scenario,
        api_key=fake.api_key,
        started=span[0],
        ended=span[1],
        requests=requests,
        deliveries=tuple(backend.callbacks.log),
        tasks=tasks,
        retry_after=dict(stage.retry_after),
        execution=execution,
        outputs=outputs,
        timeout=timeout,
    )


def grade(
    client: ClientUnderTest | ClientFunction | Sequence[str],
    scenarios: str | Iterable[Scenario] = "all",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    seed: int = 0,
    fake: GradingFake | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> GradeReport:
    """Run `client` through `scenarios` (names, comma-separated, or `Scenario`s) and grade it.

    Without `fake`, one is started for the run and stopped after it. `on_result` is called as
    each scenario is graded (the command line prints progress with it).
    """
    chosen = select(scenarios) if isinstance(scenarios, str) else list(scenarios)
    under_test = as_client(client)
    started = time.monotonic()
    results: list[ScenarioResult] = []
    with contextlib.ExitStack() as stack:
        if fake is None:
            fake = stack.enter_context(GradingFake(seed=seed))
        workdir = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="hiapi-grade-", ignore_cleanup_errors=True)
            )
        )
        for scenario in chosen:
            result = run_scenario(fake, scenario, under_test, workdir=workdir, timeout=timeout)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return GradeReport(under_test.label, tuple(results), time.monotonic() - started)
