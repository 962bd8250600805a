"""What a check concludes: a verdict, a one-line reason and the evidence behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .observe import Evidence

__all__ = ["Finding", "Verdict"]


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Finding:
    """A check's conclusion, before the grade adds its rule and advice."""

    verdict: Verdict
    reason: str
    evidence: Sequence[Evidence] = field(default_factory=tuple)
