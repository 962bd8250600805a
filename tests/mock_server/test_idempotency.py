"""Idempotency-Key claims without HTTP: replay, conflict, in-flight, the 24 h window."""

from __future__ import annotations

import pytest

from mock_server.clock import ManualClock
from mock_server.config import IDEMPOTENCY_RETRY_AFTER, IDEMPOTENCY_WINDOW
from mock_server.errors import IdempotencyMismatch, IdempotencyProcessing, InvalidRequest
from mock_server.idempotency import Idempotency
from mock_server.store import MemoryStore

BODY = {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana", "resolution": "1K"}}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def keys(clock: ManualClock) -> Idempotency:
    return Idempotency(MemoryStore(), clock)


def test_a_made_claim_replays_its_task_for_the_same_body_in_any_key_order(
    keys: Idempotency,
) -> None:
    assert keys.claim("sk-a", "k1", BODY) is None
    keys.made("sk-a", "k1", "tk-1")
    reordered = {"input": {"resolution": "1K", "prompt": "a banana"}, "model": "Nano-Banana-Pro"}
    assert keys.claim("sk-a", "k1", reordered) == "tk-1"


def test_another_body_conflicts_and_a_claim_in_flight_says_retry_later(keys: Idempotency) -> None:
    assert keys.claim("sk-a", "k1", BODY) is None
    with pytest.raises(IdempotencyProcessing) as processing:
        keys.claim("sk-a", "k1", BODY)
    assert processing.value.retry_after == IDEMPOTENCY_RETRY_AFTER
    with pytest.raises(IdempotencyMismatch):
        keys.claim("sk-a", "k1", {**BODY, "model": "other"})


def test_keys_are_per_account_and_a_released_key_is_free(keys: Idempotency) -> None:
    assert keys.claim("sk-a", "k1", BODY) is None
    assert keys.claim("sk-b", "k1", BODY) is None  # another account's key of the same name
    keys.release("sk-a", "k1")
    assert keys.claim("sk-a", "k1", {**BODY, "model": "other"}) is None


def test_a_claim_lasts_its_window_and_is_pruned_after(
    keys: Idempotency, clock: ManualClock
) -> None:
    keys.claim("sk-a", "k1", BODY)
    keys.made("sk-a", "k1", "tk-1")
    clock.advance(IDEMPOTENCY_WINDOW - 1)
    assert keys.claim("sk-a", "k1", BODY) == "tk-1"
    clock.advance(1)
    keys.prune()
    assert keys.store.idempotency("sk-a", "k1") is None
    assert keys.claim("sk-a", "k1", {**BODY, "model": "other"}) is None  # a new claim


@pytest.mark.parametrize("key", ["", "k" * 256, "é" * 128])
def test_a_key_of_no_bytes_or_more_than_255_is_refused(keys: Idempotency, key: str) -> None:
    with pytest.raises(InvalidRequest, match="Idempotency-Key: must be 1 to 255 bytes"):
        keys.claim("sk-a", key, BODY)
