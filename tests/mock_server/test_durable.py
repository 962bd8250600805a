"""`serve --state PATH`: the fake's state in SQLite, and what survives a restart, even `kill -9`.

The store tests run over both stores, the memory one as the reference. Restarts are tested
in-process (a `Backend` closed and opened again on the same file) and once as a user meets
them: a real `hiapi-mock serve --state` killed with SIGKILL mid-run and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from mock_server import sqlite_store
from mock_server.backend import Backend
from mock_server.cli import build_parser, main, settings_from_args
from mock_server.clock import DEFAULT_START, ClockReading, ManualClock, RealClock
from mock_server.config import OUTPUT_TTL, KeyPolicy, MockConfig
from mock_server.delivery import CallbackFault, Delivery, DeliveryPolicy, Fault
from mock_server.errors import InsufficientBalance
from mock_server.lifecycle import Timeline
from mock_server.receiver import CallbackReceiver
from mock_server.server import free_port
from mock_server.sqlite_store import SqliteStore, StateError
from mock_server.store import IdempotencyRecord, MemoryStore, OutputPlan, Store, TaskRecord

from ..conftest import KEY, OTHER_KEY, PAGE_EXAMPLE, auth, fixed_config
from .test_callbacks import SECRET, signature_ok
from .test_cli import SCRIPT

END = 13.0  # the fixed timing: a task ends 13 s after it was created


def task_record(task_id: str, owner: str = KEY, **fields: Any) -> TaskRecord:
    record = TaskRecord(
        task_id=task_id,
        owner=owner,
        model="Nano-Banana-Pro@fast",
        route="fast",
        prompt="a banana · \U0001f34c \ud800 [mock:delay=1s]",  # a lone surrogate too
        timeline=Timeline(("queued", "handling", "fail"), (1.5, 2.25, 3.125)),
        error=("TASK_FAILED", "upstream rejected the prompt"),
        output=OutputPlan(1024, 768, "jpeg", "jpg", "Nano-Banana-Pro · 1K · 4:3 · jpg", 7),
        callback_url="https://hooks.example.com/cb?x=1",
        base_url="http://127.0.0.1:8000/",
    )
    return replace(record, **fields)


def create_body(prompt: str, callback: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "Nano-Banana-Pro", "input": {"prompt": prompt}}
    if callback is not None:
        body["callback"] = {"url": callback}
    return body


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    yield opened
    opened.close()


@contextmanager
def backend_on(path: Path, config: MockConfig | None = None, **clock: float) -> Iterator[Backend]:
    """A fake kept in `path`, on a manual clock; closed (as a clean stop) on exit."""
    backend = Backend(config or fixed_config(), clock=ManualClock(**clock), store=SqliteStore(path))
    try:
        yield backend
    finally:
        backend.close()


def advance(backend: Backend, seconds: float) -> None:
    assert isinstance(backend.clock, ManualClock)
    backend.clock.advance(seconds)


def create(backend: Backend, body: dict[str, Any], key: str | None = None) -> tuple[str, bool]:
    return asyncio.run(backend.create(KEY, body, key, "http://fake"))


# -- the Store protocol, over both stores ---------------------------------------------------------


def test_tasks_are_kept_listed_newest_first_and_counted_per_key(store: Store) -> None:
    for number in range(5):
        store.add(task_record(f"t{number}", KEY if number % 2 == 0 else OTHER_KEY))
    assert (len(store), store.count(KEY), store.count(OTHER_KEY), store.count("sk-x")) == (
        5,
        3,
        2,
        0,
    )
    assert [t.task_id for t in store.newest(KEY, 0, 10)] == ["t4", "t2", "t0"]
    assert [t.task_id for t in store.newest(KEY, 1, 1)] == ["t2"]
    assert store.newest(KEY, 3, 10) == []
    assert [t.task_id for t in store] == ["t0", "t1", "t2", "t3", "t4"]
    assert store.get("t1") == task_record("t1", OTHER_KEY)
    assert store.get("missing") is None


def test_replace_changes_a_task_where_it_is(store: Store) -> None:
    store.add(task_record("a"))
    store.add(task_record("b"))
    store.replace(task_record("a", error=None, prompt="changed"))
    assert store.get("a") == task_record("a", error=None, prompt="changed")
    assert [t.task_id for t in store.newest(KEY, 0, 10)] == ["b", "a"]


def test_idempotency_records_are_remembered_forgotten_and_pruned_oldest_first(
    store: Store,
) -> None:
    for number in range(4):
        store.remember(KEY, f"k{number}", IdempotencyRecord(f"f{number}", 100.0 + number))
    in_flight = store.idempotency(KEY, "k1")
    assert in_flight is not None and in_flight.task_id is None
    store.remember(KEY, "k1", IdempotencyRecord("f1", 101.0, "t1"))
    store.forget(KEY, "k3")
    assert store.idempotency(KEY, "k3") is None
    assert store.prune_idempotency(cutoff=101.0) == 2
    assert [store.idempotency(KEY, f"k{n}") is None for n in range(4)] == [True, True, False, True]
    assert store.idempotency(OTHER_KEY, "k2") is None
    # A key reused after it expired starts a new record, pruned by its own age.
    store.remember(KEY, "k0", IdempotencyRecord("new", 200.0))
    assert store.prune_idempotency(cutoff=150.0) == 1
    assert store.idempotency(KEY, "k0") == IdempotencyRecord("new", 200.0)


def test_reset_forgets_every_task_and_key(store: Store) -> None:
    store.add(task_record("a"))
    store.remember(KEY, "k", IdempotencyRecord("f", 1.0, "a"))
    asyncio.run(store.flush())
    store.reset()
    assert (len(store), store.get("a"), store.idempotency(KEY, "k")) == (0, None, None)


def test_only_a_durable_store_offers_persistence(store: Store) -> None:
    assert (store.persistence is None) == isinstance(store, MemoryStore)


# -- the file -------------------------------------------------------------------------------------


def test_every_field_of_every_task_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    tasks = [
        task_record("a"),
        task_record("b", OTHER_KEY, route=None, error=None, output=None, callback_url=None),
        task_record(
            "c",
            timeline=Timeline(
                ("queued", "handling", "archiving", "success"),
                (0.1, 0.2, 0.30000000000000004, 1e10),
            ),
        ),
    ]
    first = SqliteStore(path)
    for task in tasks:
        first.add(task)
    first.replace(replace(tasks[0], prompt="replaced"))
    first.close()
    again = SqliteStore(path)
    try:
        expected = [replace(tasks[0], prompt="replaced"), *tasks[1:]]
        assert [again.get(t.task_id) for t in tasks] == expected
        assert [t.task_id for t in again.newest(KEY, 0, 10)] == ["c", "a"]
    finally:
        again.close()


def test_keys_come_back_but_a_key_still_in_flight_is_let_go(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "s.db")
    first.remember(KEY, "pruned", IdempotencyRecord("f3", 0.5, "t3"))
    first.remember(KEY, "done", IdempotencyRecord("f1", 1.0, "t1"))
    first.remember(KEY, "in-flight", IdempotencyRecord("f2", 2.0))  # its create never answered
    assert first.prune_idempotency(cutoff=0.5) == 1
    first.close()
    again = SqliteStore(tmp_path / "s.db")
    try:
        assert again.idempotency(KEY, "done") == IdempotencyRecord("f1", 1.0, "t1")
        assert again.idempotency(KEY, "in-flight") is None
        assert again.idempotency(KEY, "pruned") is None
    finally:
        again.close()


def test_the_rules_the_clock_and_the_outbox_survive_reopening(tmp_path: Path) -> None:
    fault = CallbackFault(Fault.DUPLICATE, copies=3)
    first = SqliteStore(tmp_path / "s.db")
    assert (first.saved.opened, first.saved.rules, first.saved.clock) == (0, None, None)
    first.save_rules({"next_id": 3, "rules": [{"id": "rule-2"}]})
    first.save_clock(ClockReading(100.0, 0.0, 5.0))
    first.save_clock(ClockReading(160.0, 2.0, 6.0))  # the last one counts
    first.owe(Delivery("t1", 1, 1, 50.0, None))
    first.owe(Delivery("t2", 1, 2, 70.0, fault))
    first.owe(Delivery("t2", 2, 3, 60.0, fault))
    first.owe(Delivery("t3", 1, 1, 10.0, None))
    first.settle("t1")
    first.settle("t3", 1)
    first.owe(Delivery("t4", 1, 1, 10.0, None))
    first.close()
    again = SqliteStore(tmp_path / "s.db")
    try:
        saved = again.saved
        assert (saved.opened, saved.rules) == (1, {"next_id": 3, "rules": [{"id": "rule-2"}]})
        assert saved.clock == ClockReading(160.0, 2.0, 6.0)
        assert saved.deliveries == (
            Delivery("t4", 1, 1, 10.0, None),
            Delivery("t2", 2, 3, 60.0, fault),
            Delivery("t2", 1, 2, 70.0, fault),
        )
    finally:
        again.close()
    third = SqliteStore(tmp_path / "s.db")
    third.close()
    assert third.saved.opened == 2


def test_the_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SqliteStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


def test_a_file_in_use_is_refused(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "s.db")
    try:
        with pytest.raises(StateError, match="in use by another process"):
            SqliteStore(tmp_path / "s.db")
    finally:
        first.close()


def test_files_that_are_not_state_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, " * 100)
    with pytest.raises(StateError, match="not a hiapi-mock state file"):
        SqliteStore(garbage)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text)")
    connection.close()
    with pytest.raises(StateError, match="another program's database"):
        SqliteStore(other)
    newer = tmp_path / "newer.db"
    SqliteStore(newer).close()
    with sqlite3.connect(newer) as connection:
        connection.execute(f"PRAGMA user_version = {sqlite_store.SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StateError, match="a state file of version 2"):
        SqliteStore(newer)
    with pytest.raises(StateError, match="cannot open"):
        SqliteStore(tmp_path / "no-such-folder" / "s.db")


# -- accepted means committed ---------------------------------------------------------------------


def test_a_create_is_answered_only_once_committed_and_never_blocks_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, gate = threading.Event(), threading.Event()
    commit = sqlite_store._commit

    def held_commit(*args: Any) -> Exception | None:
        entered.set()
        gate.wait(10)
        return commit(*args)

    with backend_on(tmp_path / "s.db") as backend:
        asyncio.run(backend.store.flush())  # what opening it wrote is in
        monkeypatch.setattr(sqlite_store, "_commit", held_commit)

        async def scenario() -> None:
            creating = asyncio.ensure_future(backend.create(KEY, PAGE_EXAMPLE, None, "http://x"))
            # The loop goes on while the writer thread is held in its commit.
            assert await asyncio.to_thread(entered.wait, 10)
            assert not creating.done()
            (task,) = backend.store.newest(KEY, 0, 1)
            assert backend.task(KEY, task.task_id)["status"] == "queued"  # reads still answer
            gate.set()
            assert (await asyncio.wait_for(creating, 10))[0] == task.task_id

        asyncio.run(scenario())


# -- a restart, in-process ------------------------------------------------------------------------


def test_a_restarted_fake_goes_on_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    config = fixed_config(keys={KEY: KeyPolicy(balance=5)})
    with backend_on(path, config) as backend:
        doomed_rule = {"match": {"prompt": "doomed"}, "action": {"type": "outcome"}, "times": 2}
        backend.rules.add_json(doomed_rule)
        first, _ = create(backend, create_body("plain"), key="key-1")
        doomed, _ = create(backend, create_body("doomed"))
        advance(backend, 5)
        late, _ = create(backend, create_body("late"))
        before = {i: backend.task(KEY, i) for i in (first, doomed, late)}
        statuses = {i: t["status"] for i, t in before.items()}
        assert statuses == {first: "handling", doomed: "handling", late: "queued"}
    with backend_on(path, config) as again:  # its own clock starts at the default start
        assert again.clock.now() == DEFAULT_START + 5
        assert {i: again.task(KEY, i) for i in before} == before
        assert create(again, create_body("plain"), key="key-1") == (first, True)
        (rule,) = again.rules.list()
        assert (rule.id, rule.used) == ("rule-1", 1)
        again_doomed, _ = create(again, create_body("doomed"))
        spent, _ = create(again, create_body("doomed"))
        assert len({first, doomed, late, again_doomed, spent}) == 5  # no id drawn twice
        advance(again, END)
        outcomes = [
            again.task(KEY, i)["status"] for i in (first, doomed, late, again_doomed, spent)
        ]
        assert outcomes == ["success", "fail", "success", "fail", "success"]
        with pytest.raises(InsufficientBalance):
            create(again, create_body("one too many"))  # 5 tasks made, before and after


def test_a_new_state_draws_the_seeds_ids_and_a_restart_never_draws_one_again(
    tmp_path: Path,
) -> None:
    in_memory = Backend(fixed_config(), clock=ManualClock())
    try:
        expected, _ = create(in_memory, create_body("a"))
    finally:
        in_memory.close()
    with backend_on(tmp_path / "s.db") as backend:
        assert create(backend, create_body("a")) == (expected, False)
    with backend_on(tmp_path / "s.db") as again:  # the same seed, at the same fake time
        second, _ = create(again, create_body("a"))
        assert second != expected
        assert [t.task_id for t in again.store.newest(KEY, 0, 10)] == [second, expected]


def test_images_of_outputs_made_before_a_restart_are_dropped_once_expired(tmp_path: Path) -> None:
    with backend_on(tmp_path / "s.db") as backend:
        task_id, _ = create(backend, create_body("a"))
        advance(backend, END)
    with backend_on(tmp_path / "s.db") as again:
        asyncio.run(again.outputs.file(task_id, "0.png"))
        assert task_id in again.images
        advance(again, OUTPUT_TTL)
        create(again, create_body("b"))  # a create sweeps what expired
        assert task_id not in again.images


def test_the_configured_rules_are_the_start_only_of_a_new_state(tmp_path: Path) -> None:
    rule = {"match": {"prompt": "x"}, "action": {"type": "outcome"}}
    config = fixed_config(rules=(rule,))
    with backend_on(tmp_path / "s.db", config) as backend:
        backend.rules.add_json(rule)
    with backend_on(tmp_path / "s.db", config) as again:
        assert [r.id for r in again.rules.list()] == ["rule-1", "rule-2"]
        again.reset()  # the starting scenario again: one rule, no task, the clock's start
        assert [r.id for r in again.rules.list()] == ["rule-1"]
    with backend_on(tmp_path / "s.db", config) as after_reset:
        assert [r.id for r in after_reset.rules.list()] == ["rule-1"]
        assert after_reset.rules.add_json(rule).id == "rule-2"


def test_a_real_clock_goes_on_at_its_speed_across_the_downtime() -> None:
    reading = ClockReading(now=1_000.0, speed=60.0, wall=500.0)
    assert reading.resumed(wall=510.0) == 1_600.0  # 10 s down at x60
    assert reading.resumed(wall=400.0) == 1_000.0  # a wall clock set back never moves it back
    assert ClockReading(1_000.0, 0.0, 500.0).resumed(9_999.0) == 1_000.0  # frozen: as it was
    clock = RealClock(start=5_000.0, speed=1_000.0)
    seen: list[ClockReading] = []
    stop = clock.on_change(seen.append)
    clock.resume(ClockReading(now=100.0, speed=1_000.0, wall=0.0))
    assert clock.now() >= 100.0 + 1_000.0 * 1_000_000_000  # resumed back then: decades later
    clock.freeze()
    clock.advance(5)
    stop()
    clock.advance(5)
    assert [r.speed for r in seen] == [1_000.0, 0.0, 0.0]
    assert seen[-1].now + 5 == clock.now()


def test_owed_callbacks_are_delivered_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    down = f"http://127.0.0.1:{free_port()}/down"
    policy = DeliveryPolicy(retry_delays=(60.0, 60.0))
    config = fixed_config(delivery=policy, webhook_secret=SECRET)
    with CallbackReceiver() as receiver, CallbackReceiver() as refuser:
        refuser.fail_next(1)
        with backend_on(path, config) as backend:
            retried, _ = create(backend, create_body("a", refuser.url_for("/retried")))
            dead, _ = create(backend, create_body("b", down))
            copies, _ = create(backend, create_body("c", receiver.url_for("/copies")))
            backend.callbacks.set_fault(copies, CallbackFault(Fault.DUPLICATE, copies=2))
            bad, _ = create(backend, create_body("d", receiver.url_for("/bad")))
            backend.callbacks.set_fault(bad, CallbackFault(Fault.BAD_SIGNATURE))
            advance(backend, END - 1)
            later, _ = create(backend, create_body("e", receiver.url_for("/later")))
            assert backend.callbacks.pending() == 5
        assert receiver.received == []  # stopped before any was due
        with backend_on(path, config) as again:
            advance(again, 1)  # the first four are due
            again.callbacks.wait_idle()
            assert [r.answered for r in refuser.wait_for(1)] == [500]
            assert len(receiver.wait_for(3)) == 3
            advance(again, END)  # `later` is due
            again.callbacks.wait_idle()
            assert [(a.attempt, a.status) for a in again.callbacks.for_task(dead)] == [(1, None)]
        with backend_on(path, config) as third:
            for _ in range(2):  # the refused one's retry; the dead one's two last attempts
                advance(third, 60)
                third.callbacks.wait_idle()
            assert [(r.path, r.answered) for r in refuser.received] == [
                ("/retried", 500),
                ("/retried", 200),
            ]
            assert refuser.received[1].json()["taskId"] == retried
            by_path = {r.path: r for r in receiver.received}
            paths = sorted(r.path for r in receiver.received)
            assert paths == ["/bad", "/copies", "/copies", "/later"]
            now = third.clock.now()
            assert not signature_ok(by_path["/bad"], SECRET, now - 60)  # the fault came back
            assert by_path["/later"].json()["taskId"] == later
            assert signature_ok(by_path["/later"], SECRET, now - 120)
            attempts = third.callbacks.for_task(dead)
            assert [(a.attempt, a.status) for a in attempts] == [(2, None), (3, None)]
            assert third.callbacks.pending() == 0  # every delivery finished
    with backend_on(path, config) as fourth:
        assert fourth.store.persistence is not None
        assert fourth.store.persistence.saved.deliveries == ()


def test_a_first_send_is_taken_up_as_planned_and_only_the_copies_still_owed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    with CallbackReceiver() as receiver:
        done = Timeline(("queued", "handling", "archiving", "success"), (0.0, 1.0, 2.0, 20.0))
        store = SqliteStore(path)
        owed: dict[str, list[tuple[int, CallbackFault | None]]] = {
            # copies 1 and 3 of 3 still owed: the first send had begun
            "dup": [(1, CallbackFault(Fault.DUPLICATE, copies=3)), (3, None)],
            "drop": [(1, CallbackFault(Fault.DROP))],  # a crash came before it was dropped
            "old": [(1, CallbackFault(Fault.REORDER, window=60))],  # one burst: the newest first
            "new": [(1, CallbackFault(Fault.REORDER, window=60))],
        }
        for name, copies in owed.items():
            end = 30.0 if name == "new" else 20.0
            timeline = replace(done, times=(*done.times[:3], end))
            url = receiver.url_for(f"/{name}")
            store.add(task_record(name, timeline=timeline, error=None, callback_url=url))
            for copy, fault in copies:
                store.owe(Delivery(name, copy, 1, end, fault or copies[0][1]))
        store.close()
        with backend_on(path) as backend:
            backend.callbacks.wait_idle()  # all long due: sent at once
            paths = [r.path for r in receiver.wait_for(4)]
            assert sorted(paths) == ["/dup", "/dup", "/new", "/old"]
            assert paths.index("/new") < paths.index("/old")
            assert [a.copy for a in backend.callbacks.for_task("dup")] in ([1, 3], [3, 1])
            (dropped,) = backend.callbacks.for_task("drop")
            assert dropped.error == "dropped on purpose"
            assert backend.callbacks.pending() == 0


# -- the command line -----------------------------------------------------------------------------


def test_state_and_delivery_log_size_reach_their_settings(tmp_path: Path) -> None:
    flags = ["serve", "--state", str(tmp_path / "s.db"), "--delivery-log-size", "7"]
    settings = settings_from_args(build_parser().parse_args(flags))
    assert (settings.state, settings.config.delivery.log_size) == (str(tmp_path / "s.db"), 7)
    app = settings.create_app()
    backend: Backend = app.state.backend
    try:
        assert isinstance(backend.store, SqliteStore)
        assert backend.callbacks.policy.log_size == 7
    finally:
        backend.close()


def test_a_state_file_that_cannot_be_used_stops_the_server_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"garbage " * 200)
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--state", str(path), "--port", str(free_port())])
    assert stopped.value.code == 2
    assert f"{path}: not a hiapi-mock state file" in capsys.readouterr().err


# -- kill -9, as a user meets it ------------------------------------------------------------------


class Served:
    """`hiapi-mock serve` in a process of its own, killed with SIGKILL at the end."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(SCRIPT), "serve", "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []  # what it printed, for a failure's message
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            _poll(self._answers, timeout=30)
        except AssertionError:
            self.kill()
            raise AssertionError("".join(self.lines)) from None

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.url}/_mock/clock", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _read(self) -> None:
        assert self.process.stdout is not None
        self.lines.extend(self.process.stdout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


def hammer(url: str, accepted: list[str], stop: threading.Event) -> None:
    """Create tasks one after another until the server dies; keep the ids answered 200."""
    with httpx.Client(base_url=url, headers=auth(), timeout=10) as client:
        while not stop.is_set():
            try:
                response = client.post("/v1/tasks", json=create_body("plain"))
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                accepted.append(response.json()["data"]["taskId"])


def test_kill_9_loses_nothing_that_was_accepted(tmp_path: Path) -> None:
    state = ["--state", str(tmp_path / "state.db"), "--clock", "manual", "--seed", "3"]
    down_port = free_port()
    with CallbackReceiver() as flaky, CallbackReceiver() as stalled:
        flaky.fail_next(1)
        stalled.stall_next(1)
        server = Served(*state, "--callback-timeout", "30")
        try:
            before, accepted = _first_run(server, flaky, stalled, down_port)
        finally:
            server.kill()
        with CallbackReceiver(port=down_port) as revived:
            again = Served(*state)
            try:
                _second_run(again, before, accepted, flaky, stalled, revived)
            finally:
                again.kill()


TIMING = {"type": "timing", "queued": 10, "handling": 100, "archiving": 10}  # 120 s in all


def _first_run(
    server: Served, flaky: CallbackReceiver, stalled: CallbackReceiver, down_port: int
) -> tuple[dict[str, Any], list[str]]:
    """Tasks in every status, callbacks owed in every way; then a create storm, killed."""
    with httpx.Client(base_url=server.url, headers=auth(), timeout=30) as client:
        post = _poster(client)
        post("/_mock/rules", {"match": {"prompt": "slow"}, "action": TIMING})
        doomed_rule = {"match": {"prompt": "doomed"}, "action": {"type": "outcome"}, "times": 2}
        post("/_mock/rules", doomed_rule)
        ids = {
            "stalled": post("/v1/tasks", create_body("slow", stalled.url_for("/s")))["taskId"],
            "refused": post("/v1/tasks", create_body("slow", flaky.url_for("/f")))["taskId"],
            "down": post("/v1/tasks", create_body("slow", f"http://127.0.0.1:{down_port}/d"))[
                "taskId"
            ],
            "doomed": post("/v1/tasks", create_body("slow doomed"))["taskId"],
        }
        keyed = client.post("/v1/tasks", json=create_body("slow"), headers={"Idempotency-Key": "k"})
        ids["keyed"] = keyed.json()["data"]["taskId"]
        post("/_mock/clock/advance", {"seconds": 15})
        ids["archiving"] = post("/v1/tasks", create_body("slow"))["taskId"]
        post("/_mock/clock/advance", {"seconds": 10})
        ids["handling"] = post("/v1/tasks", create_body("slow", flaky.url_for("/h")))["taskId"]
        # The first callbacks fall due: one held open, one refused, one to nobody. The jump's
        # answer waits for deliveries to settle, so it is made on the side and never awaited.
        jump = threading.Thread(target=_advance_quietly, args=(server.url, 105), daemon=True)
        jump.start()
        stalled.wait_for(1)
        flaky.wait_for(1)
        _poll(lambda: _attempted(client, ids["down"]) and _attempted(client, ids["refused"]))
        ids["queued"] = post("/v1/tasks", create_body("slow"))["taskId"]  # commits the outbox
        before = {name: client.get(f"/v1/tasks/{i}").json()["data"] for name, i in ids.items()}
        statuses = {name: task["status"] for name, task in before.items()}
        assert statuses == {
            "stalled": "success",
            "refused": "success",
            "down": "success",
            "doomed": "fail",
            "keyed": "success",
            "archiving": "archiving",
            "handling": "handling",
            "queued": "queued",
        }
        before["_clock"] = client.get("/_mock/clock").json()["data"]["now"]
    accepted: list[str] = []
    stop = threading.Event()
    storm = [threading.Thread(target=hammer, args=(server.url, accepted, stop)) for _ in "abcd"]
    for thread in storm:
        thread.start()
    _poll(lambda: len(accepted) >= 40)
    server.kill()  # SIGKILL while creates are in flight and a delivery is held open
    stop.set()
    for thread in [*storm, jump]:
        thread.join(30)
    return before, accepted


def _second_run(
    server: Served,
    before: dict[str, Any],
    accepted: list[str],
    flaky: CallbackReceiver,
    stalled: CallbackReceiver,
    revived: CallbackReceiver,
) -> None:
    with httpx.Client(base_url=server.url, headers=auth(), timeout=30) as client:
        post = _poster(client)
        clock = before.pop("_clock")
        assert client.get("/_mock/clock").json()["data"]["now"] == clock
        for name, task in before.items():
            assert client.get(f"/v1/tasks/{task['taskId']}").json()["data"] == task, name
        lost = [i for i in accepted if client.get(f"/v1/tasks/{i}").status_code != 200]
        assert lost == [], f"{len(lost)} of {len(accepted)} tasks answered 200 were lost"
        # Due and never acknowledged: sent again at once, without moving the clock.
        assert stalled.wait_for(2)[1].answered == 200
        replay = client.post(
            "/v1/tasks", json=create_body("slow"), headers={"Idempotency-Key": "k"}
        )
        assert (replay.json()["data"]["taskId"], replay.headers["idempotent-replay"]) == (
            before["keyed"]["taskId"],
            "true",
        )
        rules = client.get("/_mock/rules").json()["data"]["rules"]
        assert [(r["times"], r["used"]) for r in rules] == [(None, 8), (2, 1)]
        fails = post("/v1/tasks", create_body("slow doomed"))["taskId"]
        spent = post("/v1/tasks", create_body("slow doomed"))["taskId"]
        post("/_mock/clock/advance", {"seconds": 60})  # the retries, and `handling`'s end
        post("/_mock/clock/advance", {"seconds": 120})  # every task made has ended
        ended = {name: _status(client, task["taskId"]) for name, task in before.items()}
        assert ended == {name: "fail" if name == "doomed" else "success" for name in before}
        assert client.get(f"/v1/tasks/{fails}").json()["data"]["status"] == "fail"
        assert client.get(f"/v1/tasks/{spent}").json()["data"]["status"] == "success"
        new_ids = {fails, spent, *accepted, *(t["taskId"] for t in before.values())}
        assert len(new_ids) == len(accepted) + len(before) + 2  # no id given twice
    delivered = {r.path: r.json()["taskId"] for r in flaky.received if r.answered == 200}
    assert delivered == {"/f": before["refused"]["taskId"], "/h": before["handling"]["taskId"]}
    assert [r.json()["taskId"] for r in revived.wait_for(1)] == [before["down"]["taskId"]]


def _status(client: httpx.Client, task_id: str) -> str:
    status: str = client.get(f"/v1/tasks/{task_id}").json()["data"]["status"]
    return status


def _poster(client: httpx.Client) -> Callable[[str, dict[str, Any]], Any]:
    def post(path: str, body: dict[str, Any]) -> Any:
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    return post


def _advance_quietly(url: str, seconds: float) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server was killed before it answered
        httpx.post(f"{url}/_mock/clock/advance", json={"seconds": seconds}, timeout=30)


def _attempted(client: httpx.Client, task_id: str) -> bool:
    found = client.get("/_mock/deliveries", params={"task": task_id}).json()["data"]
    return bool(found["deliveries"])


def _poll(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    waiter = threading.Event()
    for _ in range(int(timeout / 0.01)):  # bounded
        if condition():
            return
        waiter.wait(0.01)
    raise AssertionError(f"not reached within {timeout} s")
