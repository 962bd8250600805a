"""What a contract run found: one `CheckResult` per check, the expected deviations, the spend.

Plain data, no I/O: `report.py` renders it, and it round-trips through JSON unchanged.

    >>> result = CheckResult("errors.unknown_task_404", Status.PASS)
    >>> Report(target="http://127.0.0.1:8000", results=[result]).ok
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["CheckResult", "Deviation", "Finding", "Report", "Spend", "Status"]


class Status(StrEnum):
    """How one check ended. Only `FAIL` fails a run; a skip is shown, never counted as passed."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    #: The target did what the documentation says, and a generic check misreads it.
    DEVIATION = "deviation"


@dataclass(slots=True)
class Finding:
    """One observation that breaks the contract, with the request that shows it."""

    message: str
    curl: str | None = None


@dataclass(slots=True)
class CheckResult:
    """One check: its dotted name (`group.check`), what it looked at, and how it ended."""

    name: str
    status: Status
    message: str = ""
    #: What was checked, e.g. an operation (`GET /v1/tasks`) or a task id; empty for the whole run.
    subject: str = ""
    findings: list[Finding] = field(default_factory=list)
    duration: float = 0.0
    #: Where the checked behaviour is documented: docs, sdk, example or assumed (`x-source`).
    source: str = ""

    @property
    def group(self) -> str:
        return self.name.partition(".")[0]

    @property
    def label(self) -> str:
        return f"{self.name} [{self.subject}]" if self.subject else self.name

    @property
    def curl(self) -> str | None:
        """The first failing request, as a curl command."""
        return next((f.curl for f in self.findings if f.curl), None)


@dataclass(slots=True)
class Deviation:
    """A documented behaviour a generic check reads as a failure, seen `count` times."""

    rule: str
    check: str
    subject: str
    reason: str
    count: int = 1
    curl: str | None = None


@dataclass(slots=True)
class Spend:
    """What the run cost the target."""

    requests: int = 0
    #: Of `requests`, those Schemathesis sent.
    schema_requests: int = 0
    tasks_created: int = 0
    #: Answers 429 that were waited out and retried.
    rate_limited: int = 0


@dataclass(slots=True)
class Report:
    """A whole run. `ok` when no check failed; skips and expected deviations are allowed."""

    target: str
    results: list[CheckResult] = field(default_factory=list)
    deviations: list[Deviation] = field(default_factory=list)
    spend: Spend = field(default_factory=Spend)
    notes: list[str] = field(default_factory=list)
    live: bool = False
    seed: int = 0
    started_at: float = 0.0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed()

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status is Status.FAIL]

    def named(self, name: str) -> list[CheckResult]:
        """Every result of the check called `name` (one per subject)."""
        return [r for r in self.results if r.name == name]

    def status_of(self, name: str) -> Status | None:
        """The worst status among the results of `name`: fail, then deviation, pass, skip."""
        statuses = {r.status for r in self.named(name)}
        order = (Status.FAIL, Status.DEVIATION, Status.PASS, Status.SKIP)
        return next((s for s in order if s in statuses), None)

    def counts(self) -> dict[Status, int]:
        counts = dict.fromkeys(Status, 0)
        for result in self.results:
            counts[result.status] += 1
        return counts

    # -- JSON -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["counts"] = {status.value: n for status, n in self.counts().items()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            target=data["target"],
            results=[_result(r) for r in data.get("results", [])],
            deviations=[Deviation(**d) for d in data.get("deviations", [])],
            spend=Spend(**data.get("spend", {})),
            notes=list(data.get("notes", [])),
            live=bool(data.get("live", False)),
            seed=int(data.get("seed", 0)),
            started_at=float(data.get("started_at", 0.0)),
            duration=float(data.get("duration", 0.0)),
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a report is a JSON object")
        return cls.from_dict(data)


def _result(data: dict[str, Any]) -> CheckResult:
    return CheckResult(
        name=data["name"],
        status=Status(data["status"]),
        message=data.get("message", ""),
        subject=data.get("subject", ""),
        findings=[Finding(**f) for f in data.get("findings", [])],
        duration=float(data.get("duration", 0.0)),
        source=data.get("source", ""),
    )
