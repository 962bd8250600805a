"""Many clients at once against a real uvicorn fake on a manual clock: 48 threads, each with its
own connection, create 3000 tasks for four keys, some with an Idempotency-Key replayed, some
failing, most with a callback that is sent normally, duplicated or dropped (by a prompt
directive, a rule or a configured fault). Then the clock jumps past their end.

Every create is answered 200 exactly once with an id of its own; every task is terminal, once
(a later jump changes nothing), seen alike through GET and through the list, whose totals are
right; every callback arrives as configured: once, N times or never. Rate limits are off (the
`fixed` profile); the wall time of each stage is printed (`pytest -s`), never asserted.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import pytest

from mock_server.app import create_app
from mock_server.backend import Backend
from mock_server.clock import ManualClock
from mock_server.delivery import CallbackFault, Fault, FaultRule
from mock_server.receiver import CallbackReceiver, ReceivedCallback
from mock_server.rules import Match
from mock_server.server import ServerThread

from ..conftest import TIMING, fixed_config

pytestmark = pytest.mark.server

CLIENTS = 48
TASKS = 3000
KEYS = tuple(f"sk-concurrent-{n}" for n in range(4))
END = TIMING.queued + TIMING.handling + TIMING.archiving
WAIT = 60.0  # seconds, for every wait on the fake; never reached when all is well

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Plan:
    """What task number `n` asks for, and what its callback should do."""

    n: int
    key: str
    prompt: str
    callback: bool
    copies: int  # callbacks expected at the receiver
    fails: bool
    idempotency_key: str | None

    @classmethod
    def of(cls, n: int) -> Plan:
        kind = n % 10
        prompt, copies, fails = f"task {n}", 1, False
        if kind == 1:
            prompt, copies = f"{prompt} [mock:callback=duplicate:3]", 3
        elif kind == 2:
            prompt, copies = f"{prompt} [mock:callback=drop]", 0
        elif kind == 3:
            prompt, copies = f"{prompt} [lost]", 0  # a rule drops it
        elif kind == 4:
            prompt, copies = f"{prompt} [twice]", 2  # a configured fault rule duplicates it
        elif kind == 5:
            prompt, fails = f"{prompt} [mock:fail=TASK_FAILED]", True
        callback = kind != 6
        return cls(
            n=n,
            key=KEYS[n % len(KEYS)],
            prompt=prompt,
            callback=callback,
            copies=copies if callback else 0,
            fails=fails,
            idempotency_key=f"idem-{n}" if n % 7 == 0 else None,
        )

    def body(self, receiver: CallbackReceiver) -> dict[str, Any]:
        body: dict[str, Any] = {"model": "Nano-Banana-Pro", "input": {"prompt": self.prompt}}
        if self.callback:
            body["callback"] = {"url": receiver.url_for(f"/hooks/{self.key}")}
        return body


@dataclass
class Stage:
    timings: dict[str, float]

    def run(self, name: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = work()
        self.timings[name] = time.perf_counter() - started
        return result


@dataclass
class Rig:
    backend: Backend
    clock: ManualClock
    server: ServerThread
    receiver: CallbackReceiver


@pytest.fixture
def rig() -> Iterator[Rig]:
    twice = FaultRule(CallbackFault(Fault.DUPLICATE, copies=2), prompt_contains="[twice]")
    clock = ManualClock()
    backend = Backend(fixed_config(callback_faults=(twice,)), clock=clock)
    backend.rules.add(Match(prompt="[lost]"), CallbackFault(Fault.DROP))
    with CallbackReceiver() as receiver:
        server = ServerThread(create_app(backend=backend)).start()
        try:
            yield Rig(backend, clock, server, receiver)
        finally:
            server.stop()
            backend.close()


def in_parallel(server: ServerThread, work: Callable[[httpx2.Client, int], list[T]]) -> list[T]:
    """`work(client, worker)` on CLIENTS threads, each with a connection of its own."""

    def worker(number: int) -> list[T]:
        limits = httpx2.Limits(max_connections=1)
        with httpx2.Client(base_url=server.url, timeout=WAIT, limits=limits) as client:
            return work(client, number)

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(worker, range(CLIENTS)))
    return [item for batch in results for item in batch]


def mine(worker: int) -> list[Plan]:
    return [Plan.of(n) for n in range(worker, TASKS, CLIENTS)]


@dataclass(frozen=True, slots=True)
class Created:
    plan: Plan
    status: int
    task_id: str | None
    replay: tuple[int, str | None, str | None] | None  # status, task id, Idempotent-Replay


def create_all(rig: Rig) -> list[Created]:
    def work(client: httpx2.Client, worker: int) -> list[Created]:
        done = []
        for plan in mine(worker):
            headers = {"Authorization": f"Bearer {plan.key}"}
            if plan.idempotency_key:
                headers["Idempotency-Key"] = plan.idempotency_key
            body = plan.body(rig.receiver)
            response = client.post("/v1/tasks", json=body, headers=headers)
            task_id = response.json()["data"]["taskId"] if response.status_code == 200 else None
            replay = None
            if plan.idempotency_key:
                again = client.post("/v1/tasks", json=body, headers=headers)
                data = again.json().get("data") or {}
                marker = again.headers.get("Idempotent-Replay")
                replay = (again.status_code, data.get("taskId"), marker)
            done.append(Created(plan, response.status_code, task_id, replay))
        return done

    return in_parallel(rig.server, work)


def read_all(rig: Rig, created: list[Created]) -> dict[str, dict[str, Any]]:
    """Every task as GET shows it, read by CLIENTS threads at once."""
    by_worker: dict[int, list[Created]] = defaultdict(list)
    for index, item in enumerate(created):
        by_worker[index % CLIENTS].append(item)

    def work(client: httpx2.Client, worker: int) -> list[tuple[str, dict[str, Any]]]:
        seen = []
        for item in by_worker[worker]:
            assert item.task_id is not None
            headers = {"Authorization": f"Bearer {item.plan.key}"}
            response = client.get(f"/v1/tasks/{item.task_id}", headers=headers)
            assert response.status_code == 200, response.text
            seen.append((item.task_id, response.json()["data"]))
        return seen

    return dict(in_parallel(rig.server, work))


def list_all(rig: Rig) -> dict[str, list[dict[str, Any]]]:
    """Every key's tasks through the list endpoint, page by page (bounded by the total)."""
    listed: dict[str, list[dict[str, Any]]] = {}
    with httpx2.Client(base_url=rig.server.url, timeout=WAIT) as client:
        for key in KEYS:
            headers = {"Authorization": f"Bearer {key}"}
            tasks: list[dict[str, Any]] = []
            for page in range(1, TASKS // 100 + 2):
                data = client.get(f"/v1/tasks?page={page}&size=100", headers=headers).json()
                assert data["data"]["total"] == len(range(KEYS.index(key), TASKS, len(KEYS)))
                tasks += data["data"]["tasks"]
                if len(tasks) >= data["data"]["total"]:
                    break
            listed[key] = tasks
    return listed


def callbacks_by_task(received: list[ReceivedCallback]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in received:
        body = json.loads(record.body)
        grouped[body["taskId"]].append(body)
    return grouped


def test_many_clients_many_tasks_every_task_ends_once_every_callback_as_configured(
    rig: Rig,
) -> None:
    assert not rig.backend.limiter.enforce  # rate limits off: nothing here may be a 429
    stage = Stage({})

    # 1. Creates: each answered 200 once, with an id of its own; replays give the same id.
    created = stage.run("create", lambda: create_all(rig))
    assert sorted(c.plan.n for c in created) == list(range(TASKS))
    assert Counter(c.status for c in created) == {200: TASKS}
    ids = [c.task_id for c in created]
    assert len(set(ids)) == TASKS
    replays = [c for c in created if c.replay is not None]
    assert replays and all(c.replay == (200, c.task_id, "true") for c in replays)
    assert len(rig.backend.store) == TASKS

    # 2. Before the end, nothing has ended and no callback went out.
    listed = stage.run("list before", lambda: list_all(rig))
    assert {t["status"] for tasks in listed.values() for t in tasks} == {"queued"}
    assert rig.receiver.received == []

    # 3. The clock passes every task's end: statuses move, callbacks go out.
    rig.clock.advance(END)
    expected = {c.task_id: c.plan.copies for c in created if c.task_id}
    total = sum(expected.values())
    stage.run("callbacks", lambda: rig.receiver.wait_for(total, timeout=WAIT))
    assert rig.backend.callbacks.scheduler.settle(WAIT)

    # 4. Every task is terminal, as planned, alike through GET and the list.
    tasks = stage.run("read", lambda: read_all(rig, created))
    assert len(tasks) == TASKS
    for item in created:
        assert item.task_id is not None
        task = tasks[item.task_id]
        assert task["status"] == ("fail" if item.plan.fails else "success"), task
        # A failure ends at the end of handling, a success once archived.
        assert task["created"] < task["completed"] <= task["created"] + END
        assert item.plan.fails or task["completed"] == task["created"] + END
    listed = stage.run("list after", lambda: list_all(rig))
    for key, page in listed.items():
        ids_listed = [t["taskId"] for t in page]
        assert len(ids_listed) == len(set(ids_listed))  # no task twice across pages
        assert {c.task_id for c in created if c.plan.key == key} == set(ids_listed)
        assert all(t == tasks[t["taskId"]] for t in page)

    # 5. Every callback arrived as configured, each the task as GET shows it.
    arrived = callbacks_by_task(rig.receiver.received)
    counts = {task_id: len(arrived.get(task_id, [])) for task_id in expected}
    wrong = [(t, counts[t], n) for t, n in expected.items() if counts[t] != n]
    assert not wrong, f"{len(wrong)} tasks got (count, expected) callbacks: {wrong[:5]}"
    assert set(arrived) <= set(expected)
    for task_id, bodies in arrived.items():
        assert all(body == tasks[task_id] for body in bodies)

    # 6. Terminal means once: a later jump changes no task and sends no callback.
    rig.clock.advance(86_400)
    assert rig.backend.callbacks.scheduler.settle(WAIT)
    again = stage.run("read again", lambda: read_all(rig, created))
    assert again == tasks
    assert len(rig.receiver.received) == total
    attempts = rig.backend.callbacks.log
    assert all(a.ok or a.fault == "drop" for a in attempts), "a delivery failed and was retried"

    print(
        f"\n{CLIENTS} clients, {TASKS} tasks ({len(replays)} replays), {total} callbacks: "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in stage.timings.items())
        + f"; total {sum(stage.timings.values()):.2f} s"
    )
