"""Tests for mock_server.randomness: seeded, reproducible task ids."""

from __future__ import annotations

import re

import pytest
from ulid import ULID

from mock_server.randomness import TASK_ID_PREFIX, MockRandom
from mock_server.spec import spec

TASK_ID = re.compile(r"^tk-hiapi-[0-9A-HJKMNP-TV-Z]{26}$")
NOW = 1_767_225_600.0


def ids(rng: MockRandom, n: int = 20, now: float = NOW) -> list[str]:
    return [rng.task_id(now + i) for i in range(n)]


def test_prefix() -> None:
    assert TASK_ID_PREFIX == "tk-hiapi-"


@pytest.mark.parametrize("seed", [0, 1, 7, 2**40])
def test_task_id_format(seed: int) -> None:
    for task_id in ids(MockRandom(seed), n=50):
        assert TASK_ID.fullmatch(task_id), task_id
        assert len(task_id) == len("tk-hiapi-") + 26


@pytest.mark.parametrize("now", [0.0, NOW, 1_717_809_983.394, 4_102_444_800.0])
def test_task_id_matches_the_spec_pattern(now: float) -> None:
    task_id = MockRandom(3).task_id(now)
    assert spec().validate_component("TaskId", task_id) == []


def test_spec_pattern_is_not_vacuous() -> None:
    assert spec().validate_component("TaskId", "tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQ") != []
    assert spec().validate_component("TaskId", "tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQU") != []
    assert spec().validate_component("TaskId", "01HZTQ8BX2N3GM3YFK4Z9D7VQR") != []


@pytest.mark.parametrize(
    ("now", "millis"),
    [
        (0.0, 0),
        (NOW, 1_767_225_600_000),
        (NOW + 0.5, 1_767_225_600_500),
        (NOW + 0.25, 1_767_225_600_250),
        (1_767_225_612.125, 1_767_225_612_125),
    ],
)
def test_the_ulid_encodes_the_millisecond_timestamp(now: float, millis: int) -> None:
    task_id = MockRandom(1).task_id(now)
    decoded = ULID.from_str(task_id.removeprefix(TASK_ID_PREFIX))
    assert decoded.milliseconds == millis
    assert decoded.timestamp == pytest.approx(now, abs=0.001)


def test_the_timestamp_is_in_the_first_ten_characters() -> None:
    rng = MockRandom(1)
    first, second = rng.task_id(NOW), rng.task_id(NOW)
    # Same millisecond: same time part, different random part.
    assert first[9:19] == second[9:19]
    assert first[19:] != second[19:]
    later = rng.task_id(NOW + 1)
    assert later[9:19] != first[9:19]
    assert later[9:19] > first[9:19]  # ids sort by time


def test_same_seed_same_sequence() -> None:
    assert ids(MockRandom(42)) == ids(MockRandom(42))


def test_ids_of_one_sequence_are_distinct() -> None:
    rng = MockRandom(42)
    same_time = [rng.task_id(NOW) for _ in range(200)]
    assert len(set(same_time)) == 200


def test_different_seeds_differ() -> None:
    assert ids(MockRandom(1)) != ids(MockRandom(2))
    assert MockRandom(1).task_id(NOW) != MockRandom(2).task_id(NOW)


def test_reset_restarts_the_sequence() -> None:
    rng = MockRandom(9)
    first = ids(rng)
    rng.random()  # other draws move the sequence too
    assert ids(rng) != first
    rng.reset()
    assert ids(rng) == first
    assert rng.initial_seed == 9


def test_reset_restarts_other_draws_too() -> None:
    rng = MockRandom(5)
    draws = [rng.uniform(0, 1) for _ in range(5)]
    rng.reset()
    assert [rng.uniform(0, 1) for _ in range(5)] == draws


def test_default_seed_is_reproducible() -> None:
    assert MockRandom().initial_seed == 0
    assert ids(MockRandom()) == ids(MockRandom(0))
