"""pytest fixtures for grading a client in-process: `hiapi_grader`.

Load them with `pytest_plugins = ["mock_server.grading.fixtures"]` in a top-level `conftest.py`.
One grading fake starts for the session, on a free 127.0.0.1 port, the first time a test asks
for it; each `grade` call resets it before every scenario.

    from mock_server.grading import Verdict


    def my_client(env):  # the contract's variables: HIAPI_BASE_URL, HIAPI_API_KEY, ...
        ...
        return 0


    def test_my_client_honours_retry_after(hiapi_grader):
        report = hiapi_grader.grade(my_client, "rate_limited_create")
        assert report["rate_limited_create"].get("retry_after").verdict is Verdict.PASS
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pytest

from .clients import ClientFunction, ClientUnderTest
from .results import GradeReport
from .runner import DEFAULT_TIMEOUT, GradingFake, grade
from .scenarios import Scenario

__all__ = ["Grader", "hiapi_grader", "hiapi_grading_fake"]


class Grader:
    """Grades clients against one running grading fake."""

    def __init__(self, fake: GradingFake) -> None:
        self.fake = fake

    @property
    def url(self) -> str:
        return self.fake.url

    def grade(
        self,
        client: ClientUnderTest | ClientFunction | Sequence[str],
        scenarios: str | Iterable[Scenario] = "all",
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> GradeReport:
        """`mock_server.grading.grade` on this fake: a callable, a command or a client."""
        return grade(client, scenarios, timeout=timeout, fake=self.fake)


@pytest.fixture(scope="session")
def hiapi_grading_fake() -> Iterator[GradingFake]:
    """The session's grading fake, started on first use and stopped at the end."""
    with GradingFake() as fake:
        yield fake


@pytest.fixture
def hiapi_grader(hiapi_grading_fake: GradingFake) -> Grader:
    """A `Grader`: `hiapi_grader.grade(client, "happy_path,...")` returns a `GradeReport`."""
    return Grader(hiapi_grading_fake)
