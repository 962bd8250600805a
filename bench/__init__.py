"""Benchmarks of the fake: `bench/run.sh` (or `python -m bench`) runs them all.

Every figure is measured in one run against a baseline measured in the same run (bare
Starlette on the same uvicorn settings, Prism 5, WireMock 3), never asserted: nothing here
fails on a time. Results go to `bench/results.md` and `bench/results.png`.
"""

from __future__ import annotations

__all__: list[str] = []
