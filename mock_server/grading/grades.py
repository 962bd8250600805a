"""The grades: what a client did in a scenario, judged against HiAPI's documented rules.

Each grade reads an `Observation` and gives `pass`, `warn` or `fail` with a one-line reason, the
evidence (requests and deliveries, with times on the fake's clock), the documented rule it
applies (with its source: docs, sdk, example) and the recommended behaviour. A grade that the
scenario did not exercise gives nothing, and the reports show `-`.

The checks themselves are in `request_checks` and `outcome_checks`; this module names them,
attaches the rules and advice, and orders them as the reports show them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .findings import Finding, Verdict
from .observe import Evidence, Observation
from .outcome_checks import (
    check_dedup,
    check_expired,
    check_outcome,
    check_receiver,
    check_reconcile,
)
from .request_checks import (
    check_auth,
    check_cadence,
    check_duplicates,
    check_resubmits,
    check_retry_after,
    check_spec,
    check_stops,
)
from .scenarios import Scenario

__all__ = ["GRADES", "Grade", "GradeResult", "Verdict", "grade_all"]

#: Evidence lines kept per grade; the rest are counted.
_SHOWN = 8


@dataclass(frozen=True, slots=True)
class GradeResult:
    """One grade of one client in one scenario."""

    grade: str
    verdict: Verdict
    reason: str
    rule: str
    advice: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Grade:
    """A named judgement, the rule it applies and what a client should do instead."""

    name: str
    column: str  # its short heading in the tables
    title: str
    rule: str
    advice: str
    check: Callable[[Observation], Finding | None]
    scenarios: frozenset[str] | None = None  # None: every scenario

    def applies(self, scenario: Scenario) -> bool:
        return self.scenarios is None or scenario.name in self.scenarios

    def grade(self, observation: Observation) -> GradeResult | None:
        if not self.applies(observation.scenario):
            return None
        found = self.check(observation)
        if found is None:
            return None
        evidence = tuple(found.evidence[:_SHOWN])
        more = len(found.evidence) - len(evidence)
        if more > 0:
            evidence += (Evidence(evidence[-1].at, f"... and {more} more"),)
        return GradeResult(self.name, found.verdict, found.reason, self.rule, self.advice, evidence)


def grade_all(observation: Observation) -> list[GradeResult]:
    """Every grade that applies to the observation's scenario and was exercised in it."""
    return [r for g in GRADES if (r := g.grade(observation)) is not None]


# -- the table -----------------------------------------------------------------------------------

_CALLBACK_SCENARIOS = frozenset({"callback_duplicated", "callback_delayed", "callback_dropped"})


def _grade(
    name: str, column: str, title: str, rule: str, advice: str,
    check: Callable[[Observation], Finding | None], only: Iterable[str] | None = None,
) -> Grade:  # fmt: skip
    scenarios = None if only is None else frozenset(only)
    return Grade(name, column, title, rule, advice, check, scenarios)


GRADES: tuple[Grade, ...] = (
    _grade(
        "outcome", "end", "Exit status and output match the task's end",
        "A task ends in success (with output[]) or fail (with error); a 400 is final (docs).",
        "Exit 0 only once the output is saved; exit non-zero when the task fails, the create "
        "is refused or the output cannot be fetched.",
        check_outcome,
    ),
    _grade(
        "spec_valid", "spec", "Requests valid per openapi.yaml",
        "Bodies are JSON (415 otherwise); POST /v1/tasks takes {model, input, callback?, route?}; "
        "Idempotency-Key is 1-255 bytes (docs, sdk).",
        "Build requests from the documented schema: JSON bodies with Content-Type: "
        "application/json, callback at the top level, never inside input.",
        check_spec,
    ),
    _grade(
        "auth", "auth", "API key sent on every API request",
        "Authorization: Bearer <key> on every request to /v1 (docs, sdk).",
        "Send Authorization: Bearer $HIAPI_API_KEY with every API request.",
        check_auth,
    ),
    _grade(
        "retry_after", "retry", "Retry-After respected",
        "429 and 503 carry Retry-After; clients retry them honouring it, in seconds or as an "
        "HTTP date (docs, sdk).",
        "After a 429 or 503, wait at least Retry-After before the next request; back off "
        "exponentially when none is given.",
        check_retry_after,
    ),
    _grade(
        "poll_cadence", "poll", "Polling cadence within sane bounds",
        "60 requests a minute per key (docs: rate limits); the reference clients poll from 1 s, "
        "growing x1.5 up to 10 s.",
        "Poll no faster than once a second, backing off while the task runs.",
        check_cadence,
    ),
    _grade(
        "stops_at_terminal", "stop", "Polling stops at the terminal state",
        "success and fail are terminal: queued -> handling -> archiving -> success | fail (docs).",
        "Stop polling as soon as a poll shows success or fail.",
        check_stops,
    ),
    _grade(
        "no_duplicate_create", "dup", "No duplicate creations",
        "Retry a POST after a network error only with an Idempotency-Key; the same key and body "
        "within about 24 h return the original task (sdk).",
        "Give every create an Idempotency-Key and reuse it on every retry of that create.",
        check_duplicates,
    ),
    _grade(
        "no_invalid_resubmit", "400", "No resubmission of invalid payloads",
        "400 INVALID_REQUEST means a bad body, callback URL, model, route or input; only 429 "
        "and 503 are retryable (docs, sdk).",
        "Treat a 400 as final: report its message and fix the payload; never resend it as is.",
        check_resubmits,
    ),
    _grade(
        "receiver_ack", "ack", "Receiver answers 2xx to every delivery",
        "The sender waits up to 10 s for a 2xx and retries a non-2xx, a timeout or a network "
        "error at about +1, +5 and +20 min (example); delivery is at least once (docs, sdk).",
        "Serve the receiver before creating the task; answer 2xx at once to every delivery, "
        "duplicates included, and do the work afterwards.",
        check_receiver, _CALLBACK_SCENARIOS,
    ),
    _grade(
        "callback_dedup", "dedup", "Duplicate deliveries handled once",
        "Delivery is at least once and may be concurrent: receivers deduplicate by taskId "
        "(docs, sdk).",
        "Remember the taskIds already handled; acknowledge a duplicate and do nothing more.",
        check_dedup, {"callback_duplicated"},
    ),
    _grade(
        "reconciles_by_polling", "recon", "Falls back to polling when the callback is late or lost",
        "After 4 failed attempts delivery stops and the task is unchanged (example); "
        "GET /v1/tasks/{taskId} always has the task (docs).",
        "Treat a callback as a hint: keep polling with backoff until the task is terminal.",
        check_reconcile, {"callback_delayed", "callback_dropped"},
    ),
    _grade(
        "expired_output", "expiry", "An expired output is handled gracefully",
        "output[].expireAt is completed + 604800: outputs are kept 7 days, then the link "
        "answers 404 (docs).",
        "Download promptly; on a 404, fetch the task once for a fresh link, then report the "
        "output as expired instead of retrying.",
        check_expired, {"expired_output"},
    ),
)  # fmt: skip
