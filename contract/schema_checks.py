"""Schema conformance: Schemathesis's engine, through its Python API, over `openapi.yaml`.

Phases examples, coverage, fuzzing (positive and negative data) and stateful (through the
createTask → getTask link), with the checks in `CHECKS`, authenticated with the first key,
seeded and bounded by `examples`. Every (check, operation) pair becomes one result; each
failure carries Schemathesis's curl reproduction. Failures a documented behaviour explains are
listed as expected deviations (`deviations.py`).

Hooks adapt the run to the target without hiding anything:
- generated, valid callback URLs are pointed at the harness's own sink, so the target never
  calls out to the random hosts the generator invents;
- every request is counted and, for the live API, spaced by the run's shared throttle;
- with a task budget (always with `--live`), `POST /v1/tasks` is not fuzzed at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response
from schemathesis.engine import Status as EngineStatus
from schemathesis.engine import StopReason, events, from_schema
from schemathesis.engine.run.probes import PROBES
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext
from schemathesis.schemas import BaseSchema

from mock_server.spec import spec_path

from . import deviations
from .context import Context
from .http import mask_authorization
from .results import CheckResult, Deviation, Finding, Status

__all__ = ["CHECKS", "run"]

#: The Schemathesis checks run, in the order the report lists them.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
)
_MAX_FINDINGS = 5
_MAX_MESSAGE = 1200
_STATEFUL_STEPS = 6


@dataclass(slots=True)
class _Tally:
    passes: int = 0
    deviations: int = 0
    failures: dict[str, Finding] = field(default_factory=dict)


class _Collector:
    """Turns the engine's events (and the failure filter) into results and deviations."""

    def __init__(self, keys: tuple[str, ...], vacuous: dict[str, str]) -> None:
        self.keys = keys
        #: Checks that cannot fire against this contract, and why.
        self.vacuous = vacuous
        self.tallies: dict[tuple[str, str], _Tally] = {}
        self.deviations: dict[tuple[str, str, str], Deviation] = {}
        self.errors: list[Finding] = []
        self.phases: list[str] = []
        self.cases = 0
        self.stop_reason: StopReason | None = None

    def tally(self, check: str, label: str) -> _Tally:
        return self.tallies.setdefault((check, label), _Tally())

    def keep_failure(self, failure: Failure, case: Case[Any], response: Response) -> bool:
        found = deviations.match(failure, case, response)
        if found is None:
            return True
        rule, check = found
        label = case.operation.label
        self.tally(check, label).deviations += 1
        key = (rule.id, check, label)
        if key in self.deviations:
            self.deviations[key].count += 1
        else:
            curl = mask_authorization(case.as_curl_command(headers=_sent(response)), self.keys)
            self.deviations[key] = Deviation(
                rule.id, f"schema.{check}", label, rule.reason, 1, curl
            )
        return False

    def scenario(self, event: events.ScenarioFinished) -> None:
        recorder = event.recorder
        for case_id, nodes in recorder.checks.items():
            node = recorder.cases.get(case_id)
            label = node.value.operation.label if node is not None else (event.label or "?")
            self.cases += 1
            for check in nodes:
                tally = self.tally(check.name, label)
                if check.status == EngineStatus.SUCCESS:
                    tally.passes += 1
                elif check.failure_info is not None:
                    failure = check.failure_info.failure
                    text = f"{failure.title}: {failure.message}".strip()[:_MAX_MESSAGE]
                    curl = mask_authorization(check.failure_info.code_sample, self.keys)
                    tally.failures.setdefault(text.splitlines()[0], Finding(text, curl))
                else:
                    tally.failures.setdefault("error", Finding(f"the check {check.name} crashed"))

    def error(self, event: events.NonFatalError) -> None:
        info = event.info
        text = f"{event.label}: {info.title}: {info.message}"[:_MAX_MESSAGE]
        self.errors.append(Finding(text, info.code_sample))

    def results(self) -> list[CheckResult]:
        found = [self._run_result()]
        for check in CHECKS:
            labels = sorted(label for name, label in self.tallies if name == check)
            failing = any(self.tallies[(check, label)].failures for label in labels)
            if check in self.vacuous and not failing:
                found.append(CheckResult(f"schema.{check}", Status.SKIP, self.vacuous[check]))
                continue
            if not labels:
                reason = "never applied: no exercised operation is one this check looks at"
                found.append(CheckResult(f"schema.{check}", Status.SKIP, reason))
            for label in labels:
                found.append(self._result(check, label, self.tallies[(check, label)]))
        return found

    def _result(self, check: str, label: str, tally: _Tally) -> CheckResult:
        name = f"schema.{check}"
        if tally.failures:
            findings = list(tally.failures.values())
            more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
            message = findings[0].message.splitlines()[0] + more
            return CheckResult(name, Status.FAIL, message, label, findings[:_MAX_FINDINGS])
        if tally.deviations:
            message = f"{tally.deviations} answer(s) match documented behaviour (see deviations)"
            return CheckResult(name, Status.DEVIATION, message, label)
        if tally.passes:
            return CheckResult(name, Status.PASS, f"{tally.passes} answer(s) checked", label)
        return CheckResult(name, Status.SKIP, "the check did not apply to any answer", label)

    def _run_result(self) -> CheckResult:
        message = f"phases: {', '.join(self.phases) or 'none'}; {self.cases} test case(s)"
        if self.stop_reason not in (None, StopReason.COMPLETED):
            self.errors.append(Finding(f"Schemathesis stopped early: {self.stop_reason}"))
        if self.errors:
            return CheckResult("schema.run", Status.FAIL, self.errors[0].message, "", self.errors)
        return CheckResult("schema.run", Status.PASS, message)


def run(
    ctx: Context,
    *,
    examples: int,
    sink_url: str | None,
    fuzz_create: bool,
    log: Callable[[str], None],
) -> None:
    """Run Schemathesis against the target and record one result per check and operation."""
    schema: BaseSchema = schemathesis.openapi.from_path(spec_path(), config=_config(ctx, examples))
    if not fuzz_create:
        schema = schema.exclude(method="POST")
        ctx.notes.append("POST /v1/tasks was not fuzzed: a task budget is set (--max-tasks/--live)")
    collector = _Collector(ctx.target.keys, _vacuous(ctx))
    _install_hooks(ctx, schema, collector, sink_url, fuzz_create)
    ctx.spend.requests += len(PROBES)
    ctx.spend.schema_requests += len(PROBES)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            collector.scenario(event)
        elif isinstance(event, events.PhaseFinished) and event.phase.name.value in _TESTING:
            shown = f"{event.phase.name.value} {event.status.value}"
            if event.phase.skip_reason is not None:
                shown += f" ({event.phase.skip_reason.value})"
            collector.phases.append(shown)
            log(f"schema: phase {shown}")
        elif isinstance(event, events.NonFatalError):
            collector.error(event)
        elif isinstance(event, events.FatalError):
            collector.errors.append(Finding(f"Schemathesis crashed: {event.exception!r}"))
        elif isinstance(event, events.EngineFinished):
            collector.stop_reason = event.stop_reason
    for result in collector.results():
        ctx.record(result)
    ctx.deviations += list(collector.deviations.values())


_TESTING = {"examples", "coverage", "fuzzing", "stateful"}


def _vacuous(ctx: Context) -> dict[str, str]:
    """Checks that pass whatever the target does, here: shown as skipped, not as passes."""
    methods = {m for item in ctx.facts.document.document["paths"].values() for m in item}
    if "delete" in methods:
        return {}
    reason = "not applicable: the contract has no DELETE, so nothing can be used after it is freed"
    return {"use_after_free": reason}


def _config(ctx: Context, examples: int) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": ctx.seed,
            "base-url": ctx.target.base_url,
            "auth": {"openapi": {"bearerAuth": {"bearer": ctx.target.keys[0]}}},
            "generation": {
                "mode": "all",
                "max-examples": examples,
                "deterministic": True,
                "database": "none",
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {"stateful": {"max-steps": _STATEFUL_STEPS}},
            "cache": {"enabled": False},
            # Only the API key is secret; an Idempotency-Key must stay readable in a curl.
            "output": {
                "sanitization": {
                    "keys-to-sanitize": ["authorization"],
                    "sensitive-markers": ["secret", "password"],
                }
            },
            "rate-limit": "auto",
            "request-timeout": 30,
        }
    )


def _install_hooks(
    ctx: Context, schema: BaseSchema, collector: _Collector, sink: str | None, fuzz_create: bool
) -> None:
    document = ctx.facts.document

    def redirect(case: Case[Any]) -> Case[Any]:
        body = case.body
        hook = body.get("callback") if isinstance(body, dict) else None
        valid = isinstance(hook, dict) and not document.validate_component("Callback", hook)
        if sink is not None and valid and isinstance(hook, dict):
            hook["url"] = sink
        return case

    def map_case(context: HookContext, case: Case[Any]) -> Case[Any]:
        return redirect(case)

    def before_add_examples(context: HookContext, examples: list[Case[Any]]) -> None:
        # The examples phase builds its cases without `map_case`.
        for case in examples:
            redirect(case)

    def after_call(context: HookContext, case: Case[Any], response: Response) -> None:
        _count(ctx, case, response)
        ctx.http.throttle.wait()

    def after_network_error(
        context: HookContext, case: Case[Any], request: requests.PreparedRequest
    ) -> None:
        ctx.spend.requests += 1
        ctx.spend.schema_requests += 1

    def filter_case(context: HookContext, case: Case[Any]) -> bool:
        # Belt and braces: never a create when the budget forbids fuzzing it.
        return fuzz_create or not (case.method.upper() == "POST" and case.path == "/v1/tasks")

    def filter_failure(
        context: HookContext, failure: Failure, case: Case[Any], response: Response
    ) -> bool:
        return collector.keep_failure(failure, case, response)

    hooks: dict[str, Callable[..., Any]] = {
        "map_case": map_case,
        "before_add_examples": before_add_examples,
        "after_call": after_call,
        "after_network_error": after_network_error,
        "filter_case": filter_case,
        "filter_failure": filter_failure,
    }
    for name, hook in hooks.items():
        schema.hook(name)(hook)


def _count(ctx: Context, case: Case[Any], response: Response) -> None:
    ctx.spend.requests += 1
    ctx.spend.schema_requests += 1
    created = case.method.upper() == "POST" and case.path == "/v1/tasks"
    if created and response.status_code == 200 and "idempotent-replay" not in response.headers:
        ctx.spend.tasks_created += 1


def _sent(response: Response) -> dict[str, str]:
    return {str(k): str(v) for k, v in response.request.headers.items()}
