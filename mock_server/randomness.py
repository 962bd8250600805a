"""Seeded randomness: one seed reproduces ids, outcomes and timings.

>>> a, b = MockRandom(7), MockRandom(7)
>>> a.task_id(1_767_225_600.0) == b.task_id(1_767_225_600.0)
True
"""

from __future__ import annotations

import random

from ulid import ULID

__all__ = ["TASK_ID_PREFIX", "MockRandom"]

TASK_ID_PREFIX = "tk-hiapi-"


class MockRandom(random.Random):
    """A `random.Random` that remembers its seed and makes HiAPI task ids."""

    def __init__(self, seed: int = 0) -> None:
        self.initial_seed = seed
        super().__init__(seed)

    def task_id(self, now: float) -> str:
        """`tk-hiapi-` + a ULID: 48 bits of milliseconds from `now`, 80 bits from the seed."""
        millis = int(now * 1000) & ((1 << 48) - 1)
        raw = millis.to_bytes(6, "big") + self.getrandbits(80).to_bytes(10, "big")
        return TASK_ID_PREFIX + str(ULID.from_bytes(raw))

    def reset(self) -> None:
        """Back to the start of the seed's sequence."""
        self.seed(self.initial_seed)
