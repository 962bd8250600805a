"""What a grading run found: per scenario, how the client ended and its grades."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .findings import Verdict
from .grades import GradeResult
from .observe import Execution
from .scenarios import Scenario

__all__ = ["GradeReport", "ScenarioResult"]

_RANK = {Verdict.PASS: 0, Verdict.WARN: 1, Verdict.FAIL: 2}


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One scenario: the client's run and every grade exercised in it."""

    scenario: Scenario
    execution: Execution
    grades: tuple[GradeResult, ...]
    requests: int  # how many the fake journalled
    deliveries: int  # callback attempts the fake logged

    def get(self, grade: str) -> GradeResult | None:
        """The result of the grade called `grade`, if it was given."""
        return next((g for g in self.grades if g.grade == grade), None)

    @property
    def verdict(self) -> Verdict:
        """The worst of the scenario's grades."""
        return max((g.verdict for g in self.grades), key=_RANK.__getitem__, default=Verdict.PASS)


@dataclass(frozen=True, slots=True)
class GradeReport:
    """A whole grading run of one client."""

    client: str
    results: tuple[ScenarioResult, ...]
    duration: float  # wall seconds

    def __getitem__(self, scenario: str) -> ScenarioResult:
        for result in self.results:
            if result.scenario.name == scenario:
                return result
        raise KeyError(scenario)

    @property
    def ok(self) -> bool:
        """No grade failed (warnings allowed)."""
        return all(r.verdict is not Verdict.FAIL for r in self.results)

    @property
    def exit_code(self) -> int:
        """What `hiapi-mock grade` exits with: 1 on any fail, else 0."""
        return 0 if self.ok else 1

    def counts(self) -> Counter[Verdict]:
        return Counter(g.verdict for r in self.results for g in r.grades)

    def findings(self) -> list[tuple[ScenarioResult, GradeResult]]:
        """Every grade that did not pass, scenario by scenario, fails first within each."""
        return [
            (result, grade)
            for result in self.results
            for grade in sorted(result.grades, key=lambda g: -_RANK[g.verdict])
            if grade.verdict is not Verdict.PASS
        ]
