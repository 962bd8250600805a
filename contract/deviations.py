"""Documented behaviours that Schemathesis's generic checks read as failures.

Each rule names the check it applies to, the documented reason, and a predicate on what was sent
and answered. A failure a rule matches is taken out of the run (Schemathesis's `filter_failure`
hook) and listed in the report as an expected deviation with a curl reproduction: visible,
counted, never silently dropped. Anything a rule does not match stays a failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schemathesis.core.failures import Failure
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case

__all__ = ["RULES", "Rule", "match"]

_LIST_QUERY = frozenset({"page", "size"})


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    #: The Schemathesis check the rule applies to; `*` for any.
    check: str
    reason: str
    applies: Callable[[Case[Any], Response], bool]


def _only_paging_query_negated(case: Case[Any], response: Response) -> bool:
    """GET /v1/tasks answered 200 where only `page`/`size` were out of range or unreadable."""
    if case.method.upper() != "GET" or case.path != "/v1/tasks" or response.status_code != 200:
        return False
    meta = case.meta
    if meta is None:
        return False
    negated = {loc for loc, info in meta.components.items() if info.mode.is_negative}
    query = case.query if isinstance(case.query, Mapping) else {}
    return negated == {ParameterLocation.QUERY} and set(query) <= _LIST_QUERY


def _idempotency_key_reused(case: Case[Any], response: Response) -> bool:
    """POST /v1/tasks answered 422 IDEMPOTENCY_KEY_MISMATCH to a generated key seen before."""
    if case.method.upper() != "POST" or response.status_code != 422:
        return False
    headers = {k.lower() for k in (case.headers or {})}
    return "idempotency-key" in headers and _error_code(response) == "IDEMPOTENCY_KEY_MISMATCH"


def _rate_limited(case: Case[Any], response: Response) -> bool:
    """A 429 with Retry-After: the documented per-key limit, not a contract break."""
    return response.status_code == 429 and "retry-after" in {k.lower() for k in response.headers}


RULES: tuple[Rule, ...] = (
    Rule(
        "page-size-fallback",
        "negative_data_rejection",
        "docs: an out-of-range or unreadable `page`/`size` falls back to its default silently, "
        "so GET /v1/tasks answers 200 where a generic check expects a 4xx",
        _only_paging_query_negated,
    ),
    Rule(
        "idempotency-key-reuse",
        "positive_data_acceptance",
        "sdk: the same Idempotency-Key with a different body is 422 IDEMPOTENCY_KEY_MISMATCH by "
        "design; the generator reuses short keys across different bodies",
        _idempotency_key_reused,
    ),
    Rule(
        "rate-limited",
        "*",
        "docs: 60 requests a minute and 10 at once per key; a 429 with Retry-After is the limit "
        "working (Schemathesis waits it out and retries)",
        _rate_limited,
    ),
)


def match(failure: Failure, case: Case[Any], response: Response) -> tuple[Rule, str] | None:
    """The rule that explains this failure, and the check it came from; None if none does."""
    for rule in RULES:
        checks = failure.checks or ("*",)
        if rule.check != "*" and rule.check not in checks:
            continue
        if rule.applies(case, response):
            return rule, rule.check if rule.check != "*" else checks[0]
    return None


def _error_code(response: Response) -> Any:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body.get("error_code") if isinstance(body, dict) else None
