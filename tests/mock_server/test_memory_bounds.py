"""Bounded memory: what the fake keeps about requests, deliveries, keys and images stays bounded
however long it runs. Tasks themselves are kept (a GET must keep working), by design."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mock_server.config import IDEMPOTENCY_WINDOW, OUTPUT_TTL
from mock_server.delivery import CallbackFault, DeliveryPolicy, Fault, FaultRule
from mock_server.receiver import CallbackReceiver
from mock_server.server import free_port

from ..conftest import KEY, PAGE_EXAMPLE, Fake, auth, build_fake, fixed_config

END = 13.0  # the fixed timing: a task ends 13 s after it was created
HOUR = 3_600.0


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as running:
        yield running


def with_callback(url: str, prompt: str = "a banana") -> dict[str, Any]:
    return {"model": "Nano-Banana-Pro", "input": {"prompt": prompt}, "callback": {"url": url}}


def keyed(fake: Fake, key: str, body: Any = None) -> str:
    response = fake.create(PAGE_EXAMPLE if body is None else body, headers={"Idempotency-Key": key})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["taskId"]
    return task_id


def test_the_journal_keeps_only_its_size_however_many_requests_come() -> None:
    fake = build_fake(fixed_config(journal_size=5), "asgi")
    try:
        for _ in range(40):
            fake.client.get("/v1/tasks", headers=auth())
        entries = fake.backend.journal.entries()
        assert len(fake.backend.journal) == len(entries) == 5
        assert [e.seq for e in entries] == [36, 37, 38, 39, 40]  # the newest
    finally:
        fake.close()


def test_the_delivery_log_keeps_only_its_size(receiver: CallbackReceiver) -> None:
    fake = build_fake(fixed_config(delivery=DeliveryPolicy(log_size=3)), "asgi")
    try:
        ids = [fake.task_id(with_callback(receiver.url_for())) for _ in range(8)]
        fake.clock.advance(END)
        fake.backend.callbacks.wait_idle()
        receiver.wait_for(8)
        log = fake.backend.callbacks.log
        assert len(log) == 3
        assert {a.task_id for a in log} <= set(ids)
    finally:
        fake.close()


def test_idempotency_keys_are_forgotten_24_hours_after_first_use() -> None:
    fake = build_fake(fixed_config(), "asgi")
    store = fake.backend.store
    try:
        old = [keyed(fake, f"old-{n}") for n in range(10)]
        fake.clock.advance(IDEMPOTENCY_WINDOW - 1)
        assert keyed(fake, "old-0") == old[0]  # still remembered: replayed
        fake.clock.advance(1)
        keyed(fake, "new")  # a create sweeps what expired
        assert [store.idempotency(KEY, f"old-{n}") for n in range(10)] == [None] * 10
        assert store.idempotency(KEY, "new") is not None
        assert keyed(fake, "old-1") not in old  # the key is free again: a new task
        assert store.get(old[1]) is not None  # the task itself is kept
    finally:
        fake.close()


def test_a_tasks_callback_plan_is_forgotten_once_its_delivery_is_finished(
    receiver: CallbackReceiver,
) -> None:
    faults = [
        CallbackFault(Fault.DROP),
        CallbackFault(Fault.DUPLICATE, copies=3),
        CallbackFault(Fault.REORDER, window=30),
        CallbackFault(Fault.DELAY, delay=90),
    ]
    rules = tuple(FaultRule(f, prompt_contains=f"[{f.kind.value}]") for f in faults)
    config = fixed_config(delivery=DeliveryPolicy(retry_delays=(60.0,)), callback_faults=rules)
    fake = build_fake(config, "asgi")
    callbacks = fake.backend.callbacks
    try:
        receiver.fail_next(1)
        fake.task_id(with_callback(receiver.url_for("/refused-once")))
        fake.task_id(with_callback(f"http://127.0.0.1:{free_port()}/nobody"))
        for kind in ("drop", "duplicate", "reorder", "delay"):
            fake.task_id(with_callback(receiver.url_for(f"/{kind}"), f"[{kind}]"))
        pending = [callbacks.pending()]
        for step in (END, 60, 60):  # the end; the retries and the burst; the delay
            fake.clock.advance(step)
            callbacks.wait_idle()
            pending.append(callbacks.pending())
        assert pending == [6, 4, 1, 0]
        assert sorted(r.path for r in receiver.received) == [
            *["/delay", "/duplicate", "/duplicate", "/duplicate"],
            *["/refused-once", "/refused-once", "/reorder"],
        ]
    finally:
        fake.close()


def test_cached_images_of_expired_outputs_are_dropped() -> None:
    fake = build_fake(fixed_config(), "asgi")
    images = fake.backend.images
    try:
        task_id = fake.task_id()
        fake.clock.advance(END)
        url = fake.task(task_id)["output"][0]["url"]
        assert fake.client.get(url).status_code == 200
        assert task_id in images and images.size_bytes > 0
        fake.clock.advance(OUTPUT_TTL)
        fake.task_id()  # a create sweeps what expired, downloaded again or not
        assert task_id not in images and images.size_bytes == 0
        assert fake.task(task_id)["status"] == "success"  # the task itself is kept
    finally:
        fake.close()


def test_a_long_soak_leaves_nothing_growing_but_the_tasks(receiver: CallbackReceiver) -> None:
    """Twelve fake days; every 8 hours keyed creates with callbacks, and a download."""
    config = fixed_config(journal_size=50, delivery=DeliveryPolicy(log_size=20))
    fake = build_fake(config, "asgi")
    backend = fake.backend
    steps, per_step = 36, 3
    try:
        downloaded = []
        for step in range(steps):
            for n in range(per_step):
                task_id = keyed(fake, f"{step}-{n}", with_callback(receiver.url_for()))
            fake.clock.advance(END)
            assert fake.client.get(fake.task(task_id)["output"][0]["url"]).status_code == 200
            downloaded.append(task_id)
            fake.clock.advance(8 * HOUR - END)
            backend.callbacks.wait_idle()
        receiver.wait_for(steps * per_step)
        assert (len(backend.journal), len(backend.callbacks.log)) == (50, 20)
        assert backend.callbacks.pending() == 0
        keys = [f"{step}-{n}" for step in range(steps) for n in range(per_step)]
        remembered = [key for key in keys if backend.store.idempotency(KEY, key) is not None]
        assert remembered == keys[-3 * per_step :]  # the last day's: the rest were pruned
        last_create = (steps - 1) * 8 * HOUR
        fresh = [
            t for s, t in enumerate(downloaded) if s * 8 * HOUR + END + OUTPUT_TTL > last_create
        ]
        assert [t for t in downloaded if t in backend.images] == fresh  # the rest expired
        assert 0 < len(fresh) < steps
        assert len(backend.store) == steps * per_step  # tasks are kept, by design
    finally:
        fake.close()
