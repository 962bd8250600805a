"""What a callback delivery is, apart from the sending: the policy, the faults a test can
stage, each attempt as the delivery log keeps it, and what is still owed after a restart.

`callbacks` sends them; `config`, `rules` and the stores only need these types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = [
    "MAX_COPIES",
    "MIN_WINDOW",
    "Attempt",
    "CallbackFault",
    "Delivery",
    "DeliveryPolicy",
    "Fault",
    "FaultRule",
    "Outbox",
    "Outgoing",
]

#: Bounds that keep a staged fault from becoming a flood or an overflow.
MAX_COPIES = 100
MIN_WINDOW = 0.001


class Fault(StrEnum):
    DROP = "drop"
    DUPLICATE = "duplicate"
    DELAY = "delay"
    REORDER = "reorder"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"


@dataclass(frozen=True, slots=True)
class CallbackFault:
    """One fault for one task's callback; the numbers matter only to their own kind."""

    kind: Fault
    copies: int = 2
    delay: float = 120.0
    window: float = 10.0
    stale_by: float = 900.0

    def __post_init__(self) -> None:
        copies = self.copies
        if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= MAX_COPIES:
            raise ValueError(f"action.copies: must be a whole number from 1 to {MAX_COPIES}")
        for name in ("delay", "window", "stale_by"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"action.{name}: must be a number of seconds, 0 or more")
        if self.window < MIN_WINDOW:
            raise ValueError(f"action.window: must be at least {MIN_WINDOW:g} seconds")


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Give `fault` to the callbacks of tasks whose callback URL or prompt contains a text."""

    fault: CallbackFault
    url_contains: str | None = None
    prompt_contains: str | None = None

    def matches(self, url: str, prompt: str) -> bool:
        return (self.url_contains is None or self.url_contains in url) and (
            self.prompt_contains is None or self.prompt_contains in prompt
        )


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are made: per-attempt timeout and the delays before each retry."""

    timeout: float = 10.0
    retry_delays: tuple[float, ...] = (60.0, 300.0, 1200.0)
    concurrency: int = 64
    log_size: int = 100_000

    @property
    def attempts(self) -> int:
        return 1 + len(self.retry_delays)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What to send for a task: where, the exact body, and the signing key if any."""

    url: str
    body: bytes
    secret: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt (or one deliberate drop), as the delivery log keeps it."""

    task_id: str
    url: str
    attempt: int
    copy: int
    scheduled_at: float
    sent_at: float | None  # None: never sent (dropped)
    headers: Mapping[str, str]
    status: int | None
    error: str | None
    duration: float  # wall-clock seconds the attempt took
    fault: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Delivery:
    """One callback still owed: the attempt to make next, of which copy, when, and its fault.

    Copy 1's first attempt stands for the whole first send until that send begins (it may
    become several copies, or a drop); for a `reorder` fault its `due` is the task's end, and
    the burst it joins ends later.
    """

    task_id: str
    copy: int
    attempt: int
    due: float
    fault: CallbackFault | None


class Outbox(Protocol):
    """Where deliveries are kept until finished, so a restart can take them up again."""

    def owe(self, delivery: Delivery) -> None:
        """Keep `delivery` (replacing any of the same task and copy)."""
        ...

    def settle(self, task_id: str, copy: int | None = None) -> None:
        """Forget a copy's delivery (None: every copy of the task)."""
        ...
