"""`Idempotency-Key` as HiAPI honours it, on the fake's clock. No HTTP here.

A create with a key claims it for 24 hours (`IDEMPOTENCY_WINDOW`): the same key with the same
body again answers the task it made (a replay), with another body 409, and while the first is
still being made 409 with `Retry-After`. Keys are per API key; bodies are compared by a digest
of their canonical JSON, so key order and spacing do not matter.

    >>> from mock_server.clock import ManualClock
    >>> from mock_server.store import MemoryStore
    >>> keys = Idempotency(MemoryStore(), ManualClock())
    >>> keys.claim("sk-a", "order-1", {"model": "m"}) is None  # new: go on and make the task
    True
    >>> keys.made("sk-a", "order-1", "tk-1")
    >>> keys.claim("sk-a", "order-1", {"model": "m"})
    'tk-1'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .clock import Clock
from .config import IDEMPOTENCY_RETRY_AFTER, IDEMPOTENCY_WINDOW
from .errors import IdempotencyMismatch, IdempotencyProcessing, InvalidRequest
from .store import IdempotencyRecord, Store

__all__ = ["Idempotency"]

_KEY_BYTES = 255


class Idempotency:
    """The keys of every account, kept in the fake's store (so `--state` keeps them too)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def claim(self, owner: str, key: str, body: Mapping[str, Any]) -> str | None:
        """Reserve `key` for this body and return None, or return the task it already made."""
        if len(key.encode()) > _KEY_BYTES or not key:
            raise InvalidRequest("Idempotency-Key: must be 1 to 255 bytes")
        fingerprint = _fingerprint(body)
        now = self.clock.now()
        record = self.store.idempotency(owner, key)
        if record is not None and now - record.first_seen >= IDEMPOTENCY_WINDOW:
            record = None
        if record is None:
            self.store.remember(owner, key, IdempotencyRecord(fingerprint, now))
            return None
        if record.fingerprint != fingerprint:
            raise IdempotencyMismatch("this Idempotency-Key was used with a different request body")
        if record.task_id is None:
            raise IdempotencyProcessing(
                "a request with this Idempotency-Key is still being processed",
                retry_after=IDEMPOTENCY_RETRY_AFTER,
            )
        return record.task_id

    def made(self, owner: str, key: str, task_id: str) -> None:
        """The claim of `key` made `task_id`: a replay answers it from now on."""
        record = self.store.idempotency(owner, key)
        if record is not None:
            record.task_id = task_id
            self.store.remember(owner, key, record)

    def release(self, owner: str, key: str) -> None:
        """The claim failed to make a task: the key is free again."""
        self.store.forget(owner, key)

    def prune(self) -> None:
        """Forget claims past their window (the store looks only at its oldest)."""
        self.store.prune_idempotency(self.clock.now() - IDEMPOTENCY_WINDOW)


def _fingerprint(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
