"""Fixtures of the client's unit tests: a fake clock and a factory for either client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .support import Api, FakeClock, Script, make_async, make_sync

MakeApi = Callable[..., Api]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sync", "async"])
def make_api(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[MakeApi]:
    """`make_api(script, **client_options)`: the client under test, sync or async."""
    made: list[Api] = []

    def make(script: Script, **options: Any) -> Api:
        factory = make_sync if request.param == "sync" else make_async
        api = factory(script, clock, **options)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()
