"""hiapi-contract: checks any HiAPI base URL against `openapi.yaml`, only over HTTP.

    >>> from contract import check
    >>> report = check()                     # doctest: +SKIP
    >>> report.ok, [r.label for r in report.failed()]   # doctest: +SKIP
    (True, [])

`check()` without a base URL starts hiapi-mock in this process; `main()` is the
`hiapi-contract` command line.
"""

from __future__ import annotations

from .cli import main
from .errors import ContractError, UsageError
from .results import CheckResult, Deviation, Finding, Report, Spend, Status
from .runner import check

__all__ = [
    "CheckResult",
    "ContractError",
    "Deviation",
    "Finding",
    "Report",
    "Spend",
    "Status",
    "UsageError",
    "check",
    "main",
]
