"""Type aliases shared by the client's modules, kept in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

#: `clock() -> float`: monotonic seconds, used for deadlines.
Clock: TypeAlias = Callable[[], float]
#: `sleep(seconds)`: the synchronous client's way to wait.
Sleep: TypeAlias = Callable[[float], None]
#: `await sleep(seconds)`: the asynchronous client's way to wait.
AsyncSleep: TypeAlias = Callable[[float], Awaitable[None]]
#: A JSON object as decoded from the wire.
JSONObject: TypeAlias = Mapping[str, Any]


class NotGiven:
    """The type of `NOT_GIVEN`: "the caller said nothing", where `None` means something."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN = NotGiven()
