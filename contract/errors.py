"""The harness's exceptions, one root:

    ContractError
    ├── UsageError   bad options for `check()` / the command line (also a ValueError)
    └── Skip         raised inside a check that cannot run against this target; never escapes a run

A target that breaks the contract raises nothing: it fails checks in the `Report`.
"""

from __future__ import annotations

__all__ = ["ContractError", "Skip", "UsageError"]


class ContractError(Exception):
    """Root of the harness's own exceptions."""


class UsageError(ContractError, ValueError):
    """The run was asked for something it cannot do (a missing key, an unknown group...)."""


class Skip(ContractError):
    """Raised inside a check that cannot run here; the reason is shown in the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
