"""Schemathesis against a real uvicorn fake, in negative and in mixed mode, over every operation
of `openapi.yaml`: thousands of seeded requests, not one 5xx, every answer in HiAPI's envelope
with `code` equal to the status, and the fake healthy afterwards.

Only `not_a_server_error` runs as a Schemathesis check: the envelope is checked here, on every
answer, by an `after_call` hook. (Some of Schemathesis' other checks argue with documented
choices, e.g. a bad `page` falls back silently instead of a 400; `test_app.py` and the contract
harness cover conformance.) The run is deterministic: one seed, no example database.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext

from mock_server.app import create_app
from mock_server.backend import Backend
from mock_server.clock import ManualClock
from mock_server.server import ServerThread
from mock_server.spec import spec, spec_path

from ..conftest import PAGE_EXAMPLE, auth, fixed_config

pytestmark = pytest.mark.server

SEED = 20_260_101
FUZZ_KEY = "sk-fuzz"
#: Per operation; negative cases cost Schemathesis about 20 ms each to draw.
NEGATIVE_EXAMPLES = 350
MIXED_EXAMPLES = 120


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Fuzzed:
    backend: Backend
    server: ServerThread
    errors: _Errors

    def assert_healthy(self) -> None:
        """A normal create and read still work, and the server logged no error."""
        with httpx2.Client(base_url=self.server.url, headers=auth(), timeout=30) as client:
            created = client.post("/v1/tasks", json=PAGE_EXAMPLE)
            assert created.status_code == 200, created.text
            task_id = created.json()["data"]["taskId"]
            assert client.get(f"/v1/tasks/{task_id}").json()["data"]["status"] == "queued"
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    # A frozen manual clock: tasks made with a callback never finish, so nothing is delivered
    # to the hosts Schemathesis makes up.
    backend = Backend(fixed_config(journal_size=100), clock=ManualClock())
    errors = _Errors()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "hiapi_mock")]
    for logger in loggers:
        logger.addHandler(errors)
    server = ServerThread(create_app(backend=backend)).start()
    yield Fuzzed(backend, server, errors)
    server.stop()
    backend.close()
    for logger in loggers:
        logger.removeHandler(errors)


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one Schemathesis run sent and got back."""

    by_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    creates: Counter[int] = field(default_factory=Counter)  # statuses of POST /v1/tasks
    problems: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.by_operation.values())

    def answer(self, case: Case[Any], response: Response) -> None:
        operation = f"{case.method.upper()} {case.operation.path}"
        self.by_operation[operation] += 1
        self.statuses[response.status_code] += 1
        if operation == "POST /v1/tasks":
            self.creates[response.status_code] += 1
        found = envelope_problems(response.status_code, response.content)
        if found:
            sent = f"{case.method.upper()} {str(response.request.url)[:200]}"
            self.problems.append(f"{sent} -> {response.status_code}: {found}")


def envelope_problems(status: int, body: bytes) -> str | None:
    """Why `body` is not HiAPI's envelope for `status`, or None when it is."""
    if status >= 500:
        return "a server error"
    try:
        envelope = json.loads(body)
    except ValueError:
        return "not JSON"
    if not isinstance(envelope, dict) or envelope.get("code") != status:
        return f"code is not {status}"
    if not isinstance(envelope.get("message"), str):
        return "no message"
    if status >= 400:
        problems = spec().validate_component("ErrorEnvelope", envelope)
        if problems or not envelope.get("error_code") or not envelope["message"]:
            return f"not an error envelope: {problems}"
    elif "data" not in envelope:
        return "no data"
    return None


def run(fuzzed: Fuzzed, mode: str, examples: int) -> Tally:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": fuzzed.server.url,
            "auth": {"openapi": {"bearerAuth": {"bearer": FUZZ_KEY}}},
            "generation": {
                "mode": mode,
                "max-examples": examples,
                "deterministic": True,
                "database": "none",
            },
            "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "request-timeout": 30,
        }
    )
    schema = schemathesis.openapi.from_path(spec_path(), config=config)
    tally = Tally()

    def after_call(context: HookContext, case: Case[Any], response: Response) -> None:
        tally.answer(case, response)

    def after_network_error(context: HookContext, case: Case[Any], request: Any) -> None:
        tally.problems.append(f"{case.method.upper()} {case.path}: no answer (network error)")

    schema.hook("after_call")(after_call)
    schema.hook("after_network_error")(after_network_error)
    stop_reason = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.NonFatalError):
            tally.problems.append(f"Schemathesis error in {event.label}: {event.value!r}")
        elif isinstance(event, events.ScenarioFinished) and event.status.value == "failure":
            tally.problems.append(f"{event.label} failed a check in the {event.phase.value} phase")
        elif isinstance(event, events.EngineFinished):
            stop_reason = event.stop_reason
    assert stop_reason is StopReason.COMPLETED, stop_reason
    return tally


def _operations() -> set[str]:
    paths = spec().document["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items() for method in item}


def check(tally: Tally, fuzzed: Fuzzed, at_least: int) -> None:
    print(f"{tally.requests} requests {dict(tally.by_operation)}, statuses {dict(tally.statuses)}")
    print(f"creates: {dict(tally.creates)}")
    assert not tally.problems, "\n".join(tally.problems[:20])
    assert not [s for s in tally.statuses if s >= 500]
    assert tally.requests >= at_least
    assert _operations() <= set(tally.by_operation)
    assert tally.by_operation["POST /v1/tasks"] >= at_least // 6
    fuzzed.assert_healthy()


# -- the tests -----------------------------------------------------------------------------------


def test_negative_mode_over_every_operation_finds_no_server_error(fuzzed: Fuzzed) -> None:
    tally = run(fuzzed, "negative", NEGATIVE_EXAMPLES)
    check(tally, fuzzed, at_least=900)
    # A negative create is refused (the spec's two examples, sent as they are, are accepted);
    # a bad page or size on a list falls back silently, as documented, so lists are not counted.
    refused = sum(n for status, n in tally.creates.items() if 400 <= status < 500)
    assert refused >= tally.by_operation["POST /v1/tasks"] * 0.95, tally.creates


def test_mixed_mode_over_every_operation_finds_no_server_error(fuzzed: Fuzzed) -> None:
    tally = run(fuzzed, "all", MIXED_EXAMPLES)
    check(tally, fuzzed, at_least=350)
    assert tally.statuses[200] > 0 and tally.statuses[400] > 0
