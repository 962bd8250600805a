"""A task's status machine, as a table, and its timeline.

The legal moves are data in `openapi.yaml` (`TaskStatus.x-transitions`). A task's status is not
stored and not driven by timers: it is read off its `Timeline`, the times at which it enters each
status, for the clock's current time. An idle task costs nothing.

    >>> line = plan(100.0, Timing(1.0, 10.0, 2.0), error=None)
    >>> [line.status_at(t) for t in (100.0, 101.0, 111.0, 113.0)]
    ['queued', 'handling', 'archiving', 'success']
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from .catalog import Timing
from .errors import IllegalTransition
from .spec import spec

__all__ = [
    "FAIL",
    "MOVES",
    "QUEUED",
    "STATUSES",
    "SUCCESS",
    "TERMINAL",
    "Timeline",
    "check_moves",
    "plan",
]


def _table() -> tuple[tuple[str, ...], frozenset[tuple[str | None, str]]]:
    status = spec().schema("TaskStatus")
    moves: set[tuple[str | None, str]] = {(None, status["enum"][0])}
    moves.update((a, b) for a, b in status["x-transitions"]["moves"])
    return tuple(status["enum"]), frozenset(moves)


STATUSES, MOVES = _table()
QUEUED, HANDLING, ARCHIVING, SUCCESS, FAIL = STATUSES
TERMINAL = frozenset({SUCCESS, FAIL})


def check_moves(statuses: Iterable[str]) -> None:
    """Raise `IllegalTransition` unless the statuses follow the table from the start."""
    previous: str | None = None
    for status in statuses:
        if (previous, status) not in MOVES:
            raise IllegalTransition(f"a task cannot move from {previous or 'nothing'} to {status}")
        previous = status


@functools.lru_cache(maxsize=64)
def _check_sequence(statuses: tuple[str, ...]) -> None:
    # Every task of a profile has the same few sequences: each is checked once.
    check_moves(statuses)


@dataclass(frozen=True, slots=True)
class Timeline:
    """When a task enters each status, in order; the last status is terminal."""

    statuses: tuple[str, ...]
    times: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.statuses) != len(self.times):
            raise IllegalTransition("a timeline needs one time per status")
        _check_sequence(self.statuses)
        if self.statuses[-1] not in TERMINAL:
            raise IllegalTransition("a timeline must end in success or fail")
        if any(b < a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise IllegalTransition("a timeline cannot go back in time")

    @property
    def created(self) -> float:
        return self.times[0]

    @property
    def outcome(self) -> str:
        return self.statuses[-1]

    @property
    def finished(self) -> float:
        return self.times[-1]

    def status_at(self, now: float) -> str:
        current = self.statuses[0]
        for status, when in zip(self.statuses, self.times, strict=True):
            if when > now:
                break
            current = status
        return current

    def finish(self, now: float, outcome: str) -> Timeline:
        """The same task ending with `outcome` at `now` (or sooner, if it already ended)."""
        if self.finished <= now:
            return self
        current = self.status_at(now)
        kept = self.statuses.index(current) + 1
        path = _path(current, outcome)
        return Timeline(
            self.statuses[:kept] + path,
            self.times[:kept] + (max(now, self.times[kept - 1]),) * len(path),
        )


def _path(current: str, outcome: str) -> tuple[str, ...]:
    """The shortest run of moves from `current` to `outcome`, excluding `current`."""
    paths: list[tuple[str, ...]] = [(current,)]
    while paths:
        path = paths.pop(0)
        if path[-1] == outcome:
            return path[1:]
        paths += [(*path, b) for a, b in MOVES if a == path[-1] and b not in path]
    raise IllegalTransition(f"a task cannot move from {current} to {outcome}")


def plan(created: float, timing: Timing, *, error: object | None) -> Timeline:
    """The timeline of a task created at `created`: success unless `error`, which ends it in
    `fail` straight from `handling` (the model refused it)."""
    t1 = created + timing.queued
    t2 = t1 + timing.handling
    if error is not None:
        return Timeline((QUEUED, HANDLING, FAIL), (created, t1, t2))
    return Timeline(
        (QUEUED, HANDLING, ARCHIVING, SUCCESS), (created, t1, t2, t2 + timing.archiving)
    )
