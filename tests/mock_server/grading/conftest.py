"""Fixtures of the grading tests: the three clients, each graded once in every scenario.

The three gradings run at once, each against a fake of its own, so the suite waits for the
slowest (about 20 s) rather than for their sum; every wait inside is bounded by the timeout.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from mock_server.grading import GradeReport, grade
from mock_server.grading.fixtures import hiapi_grader, hiapi_grading_fake

__all__ = ["hiapi_grader", "hiapi_grading_fake"]

CLIENTS = Path(__file__).parent / "clients"
REFERENCE = [sys.executable, str(CLIENTS / "reference_client.py")]
NAIVE = [sys.executable, str(CLIENTS / "naive_client.py")]
CURL = [str(CLIENTS / "curl_client.sh")]
#: Per scenario; the slowest client needs about 3 s.
TIMEOUT = 20.0


def require_curl() -> None:
    """The curl client must run: a machine without curl fails here, loudly, never skips."""
    assert shutil.which("curl"), "curl is not installed: the curl client cannot be graded"


@pytest.fixture(scope="session")
def gradings() -> Iterator[dict[str, Future[GradeReport]]]:
    """The reference, naive and curl clients graded in every scenario, concurrently."""
    require_curl()
    with ThreadPoolExecutor(3, thread_name_prefix="grading") as pool:
        yield {
            name: pool.submit(grade, command, timeout=TIMEOUT)
            for name, command in (("reference", REFERENCE), ("naive", NAIVE), ("curl", CURL))
        }


def _report(gradings: dict[str, Future[GradeReport]], name: str) -> GradeReport:
    return gradings[name].result(timeout=TIMEOUT * 12)


@pytest.fixture(scope="session")
def reference_report(gradings: dict[str, Future[GradeReport]]) -> GradeReport:
    return _report(gradings, "reference")


@pytest.fixture(scope="session")
def naive_report(gradings: dict[str, Future[GradeReport]]) -> GradeReport:
    return _report(gradings, "naive")


@pytest.fixture(scope="session")
def curl_report(gradings: dict[str, Future[GradeReport]]) -> GradeReport:
    return _report(gradings, "curl")
