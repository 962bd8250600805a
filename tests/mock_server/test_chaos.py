"""Randomised bad days: rates of 429s, 503s and callback faults, reproducible from the seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from mock_server.config import Chaos
from mock_server.receiver import CallbackReceiver

from ..conftest import PAGE_EXAMPLE, Fake, auth, fixed_config

MakeFake = Callable[..., Fake]


def statuses(fake: Fake, count: int) -> list[tuple[int, str | None]]:
    seen = []
    for _ in range(count):
        response = fake.client.get("/v1/tasks", headers=auth())
        seen.append((response.status_code, response.headers.get("Retry-After")))
    return seen


def test_429_and_503_rates_are_met_in_a_reproducible_order(make_fake: MakeFake) -> None:
    chaos = Chaos(rate_429=0.2, rate_503=0.1)
    first = statuses(make_fake(fixed_config(seed=3, chaos=chaos)), 300)
    again = statuses(make_fake(fixed_config(seed=3, chaos=chaos)), 300)
    other = statuses(make_fake(fixed_config(seed=4, chaos=chaos)), 300)
    assert first == again
    assert first != other
    counts = Counter(status for status, _ in first)
    assert 40 <= counts[429] <= 80
    assert 15 <= counts[503] <= 45
    assert counts[200] == 300 - counts[429] - counts[503]
    for status, retry_after in first:
        if status != 200:
            assert retry_after is not None and 1 <= int(retry_after) <= 10


def test_chaos_changes_no_task_id(make_fake: MakeFake) -> None:
    calm = make_fake(fixed_config(seed=5))
    stormy = make_fake(fixed_config(seed=5, chaos=Chaos(rate_503=0.5)))
    calm_ids = [calm.task_id() for _ in range(10)]
    stormy_ids = []
    for _ in range(40):
        response = stormy.create(PAGE_EXAMPLE)
        if response.status_code == 200:
            stormy_ids.append(response.json()["data"]["taskId"])
    assert len(stormy_ids) >= 10
    assert stormy_ids[:10] == calm_ids


def test_callback_fault_rates_are_drawn_from_the_seed(make_fake: MakeFake) -> None:
    def run(seed: int) -> list[str | None]:
        fake = make_fake(fixed_config(seed=seed, chaos=Chaos(callback_faults={"drop": 0.5})))
        with CallbackReceiver() as receiver:
            body = {**PAGE_EXAMPLE, "callback": {"url": receiver.url_for()}}
            ids = [fake.task_id(body) for _ in range(60)]
            fake.clock.advance(20)
            fake.backend.callbacks.wait_idle()
            faults = [fake.backend.callbacks.for_task(i)[0].fault for i in ids]
            assert len(receiver.received) == faults.count(None)
        return faults

    first, again = run(11), run(11)
    assert first == again
    assert 15 <= first.count("drop") <= 45


@pytest.mark.parametrize(
    "chaos",
    [
        {"rate_429": 1.5},
        {"rate_429": 0.6, "rate_503": 0.6},
        {"callback_faults": {"explode": 0.1}},
        {"callback_faults": {"drop": 0.7, "duplicate": 0.7}},
    ],
)
def test_impossible_rates_are_refused(chaos: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Chaos(**chaos)  # type: ignore[arg-type]
