"""A durable `Store`: the fake's state in one SQLite file (WAL mode), for `serve --state PATH`.

Reads never touch the file: every task and idempotency record is loaded at start into a
`MemoryStore` that mirrors the file and answers every read. Writes update the mirror, then go
on a queue to one writer thread that owns the connection and commits them in order, many per
transaction; `await store.flush()` returns once everything queued before it is committed (with
`synchronous=FULL`: on disk). Nothing here blocks the event loop.

Kept: tasks (every field), idempotency records, the rules (their JSON form with use counts),
the clock (a `ClockReading`, at each change), the callback outbox, and how often the file was
opened. The file is locked while open: a second server on it is refused.

    >>> import asyncio, pathlib, shutil, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "state.db"
    >>> store = SqliteStore(path)
    >>> store.remember("sk-demo", "key-1", IdempotencyRecord("f00d", 1_767_225_600.0, "tk-1"))
    >>> asyncio.run(store.flush()); store.close()
    >>> again = SqliteStore(path)
    >>> again.idempotency("sk-demo", "key-1").task_id, again.saved.opened
    ('tk-1', 1)
    >>> again.close(); shutil.rmtree(path.parent)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeAlias

from .clock import ClockReading
from .delivery import CallbackFault, Delivery, Fault
from .lifecycle import Timeline
from .store import IdempotencyRecord, MemoryStore, OutputPlan, Persistence, Saved, TaskRecord

__all__ = ["SCHEMA_VERSION", "SqliteStore", "StateError"]

log = logging.getLogger("hiapi_mock.state")

#: The layout of the file; a file of another version is refused.
SCHEMA_VERSION = 1
_APPLICATION_ID = 0x48694D6B  # "HiMk": marks the file as this fake's
_BATCH = 512  # writes per transaction at most
_CLOSE_TIMEOUT = 30.0
_SCHEMA = """
CREATE TABLE tasks (seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
CREATE TABLE idempotency (
    owner TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, first_seen REAL NOT NULL,
    task_id TEXT, PRIMARY KEY (owner, key));
CREATE INDEX idempotency_first_seen ON idempotency (first_seen);
CREATE TABLE outbox (
    task_id TEXT NOT NULL, copy INTEGER NOT NULL, attempt INTEGER NOT NULL, due REAL NOT NULL,
    fault TEXT, PRIMARY KEY (task_id, copy));
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_PUT_TASK = (
    "INSERT INTO tasks (task_id, data) VALUES (?, ?) "
    "ON CONFLICT (task_id) DO UPDATE SET data = excluded.data"
)
_PUT_KEY = "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)"
_DROP_KEY = "DELETE FROM idempotency WHERE owner = ? AND key = ?"
_PRUNE_KEYS = "DELETE FROM idempotency WHERE first_seen <= ?"
_OWE = "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?)"
_SETTLE_ONE = "DELETE FROM outbox WHERE task_id = ? AND copy = ?"
_SETTLE_ALL = "DELETE FROM outbox WHERE task_id = ?"
_PUT_META = "INSERT OR REPLACE INTO meta VALUES (?, ?)"

_Write: TypeAlias = tuple[str, tuple[Any, ...]]
_STOP = object()


class StateError(Exception):
    """The state file cannot be used: unreadable, another program's, or in use."""


@dataclass(slots=True)
class _Loaded:
    tasks: list[TaskRecord]
    keys: list[tuple[str, str, IdempotencyRecord]]
    saved: Saved


class SqliteStore:
    """Tasks, idempotency records and the rest of the fake's state in a SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._memory = MemoryStore()
        self._queue: queue.SimpleQueue[_Write | Future[None] | object] = queue.SimpleQueue()
        self._closed = False
        loaded: Future[_Loaded] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(loaded,), name="hiapi-mock-state", daemon=True
        )
        self._thread.start()
        try:
            result = loaded.result()
        except BaseException:
            self._thread.join(_CLOSE_TIMEOUT)
            raise
        for task in result.tasks:
            self._memory.add(task)
        for owner, key, record in result.keys:
            self._memory.remember(owner, key, record)
        self._saved = result.saved

    # -- Store ------------------------------------------------------------------------------

    def add(self, task: TaskRecord) -> None:
        self._memory.add(task)
        self._write(_PUT_TASK, (task.task_id, _task_json(task)))

    def replace(self, task: TaskRecord) -> None:
        self._memory.replace(task)
        self._write(_PUT_TASK, (task.task_id, _task_json(task)))

    def get(self, task_id: str) -> TaskRecord | None:
        return self._memory.get(task_id)

    def count(self, owner: str) -> int:
        return self._memory.count(owner)

    def newest(self, owner: str, offset: int, limit: int) -> list[TaskRecord]:
        return self._memory.newest(owner, offset, limit)

    def idempotency(self, owner: str, key: str) -> IdempotencyRecord | None:
        return self._memory.idempotency(owner, key)

    def remember(self, owner: str, key: str, record: IdempotencyRecord) -> None:
        self._memory.remember(owner, key, record)
        row = (owner, key, record.fingerprint, record.first_seen, record.task_id)
        self._write(_PUT_KEY, row)

    def forget(self, owner: str, key: str) -> None:
        self._memory.forget(owner, key)
        self._write(_DROP_KEY, (owner, key))

    def prune_idempotency(self, cutoff: float) -> int:
        pruned = self._memory.prune_idempotency(cutoff)
        if pruned:
            self._write(_PRUNE_KEYS, (cutoff,))
        return pruned

    async def flush(self) -> None:
        """Return once every write made so far is committed to the file."""
        await asyncio.wrap_future(self._barrier())

    def commit(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        """`flush`, blocking (for code outside an event loop)."""
        self._barrier().result(timeout)

    def reset(self) -> None:
        """Forget every task, idempotency record and owed callback (the rules and the clock
        are saved again by their owners as they reset)."""
        self._memory.reset()
        for table in ("tasks", "idempotency", "outbox"):
            self._write(f"DELETE FROM {table}", ())

    def close(self) -> None:
        """Commit what is queued and close the file; later writes are ignored."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(_CLOSE_TIMEOUT)

    def __len__(self) -> int:
        return len(self._memory)

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(self._memory)

    # -- Persistence ------------------------------------------------------------------------

    @property
    def persistence(self) -> Persistence:
        return self

    @property
    def saved(self) -> Saved:
        """What earlier runs left, as it was when this store opened the file."""
        return self._saved

    def save_rules(self, snapshot: Mapping[str, Any]) -> None:
        self._write(_PUT_META, ("rules", json.dumps(snapshot, separators=(",", ":"))))

    def save_clock(self, reading: ClockReading) -> None:
        self._write(_PUT_META, ("clock", json.dumps(asdict(reading))))

    def owe(self, delivery: Delivery) -> None:
        fault = _fault_json(delivery.fault)
        row = (delivery.task_id, delivery.copy, delivery.attempt, delivery.due, fault)
        self._write(_OWE, row)

    def settle(self, task_id: str, copy: int | None = None) -> None:
        if copy is None:
            self._write(_SETTLE_ALL, (task_id,))
        else:
            self._write(_SETTLE_ONE, (task_id, copy))

    # -- the writer thread ------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        if not self._closed:
            self._queue.put((sql, params))

    def _barrier(self) -> Future[None]:
        done: Future[None] = Future()
        if self._closed:
            done.set_result(None)
        else:
            self._queue.put(done)
        return done

    def _run(self, loaded: Future[_Loaded]) -> None:
        try:
            connection = _connect(self.path)
            try:
                result = _load(connection, self.path)
            except BaseException:
                connection.close()
                raise
        except BaseException as exc:  # handed to the thread that opened the store
            loaded.set_exception(exc)
            return
        loaded.set_result(result)
        try:
            while self._serve(connection):
                pass
        finally:
            connection.close()

    def _serve(self, connection: sqlite3.Connection) -> bool:
        """Commit one batch of what is queued, then answer its barriers; False on stop."""
        batch = [self._queue.get()]
        while len(batch) < _BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        writes = [item for item in batch if isinstance(item, tuple)]
        error = _commit(connection, writes, self.path) if writes else None
        for item in batch:
            if isinstance(item, Future):
                if error is None:
                    item.set_result(None)
                else:
                    item.set_exception(error)
        return not any(item is _STOP for item in batch)


# -- the file ------------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # Created owner-only: it holds API keys. SQLite gives its WAL file the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(path, isolation_level=None, timeout=0)
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"{path}: cannot open the state file: {exc}") from None
    try:
        # Exclusive: the lock is taken at the first write and held until close, so a second
        # server on the same file is refused (the OS drops the lock if this process dies).
        connection.execute("PRAGMA locking_mode = EXCLUSIVE")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("BEGIN IMMEDIATE")
        _check_schema(connection, path)
        connection.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        connection.close()
        if "locked" in str(exc):
            raise StateError(f"{path}: the state file is in use by another process") from None
        raise StateError(f"{path}: cannot use the state file: {exc}") from None
    except (sqlite3.Error, StateError) as exc:
        connection.close()
        if isinstance(exc, StateError):
            raise
        raise StateError(f"{path}: not a hiapi-mock state file: {exc}") from None
    return connection


def _check_schema(connection: sqlite3.Connection, path: Path) -> None:
    (app,) = connection.execute("PRAGMA application_id").fetchone()
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    (tables,) = connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    if app == 0 and tables == 0:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    elif app != _APPLICATION_ID:
        raise StateError(f"{path}: not a hiapi-mock state file (another program's database)")
    elif version != SCHEMA_VERSION:
        raise StateError(
            f"{path}: a state file of version {version}; this hiapi-mock reads {SCHEMA_VERSION}"
        )


def _load(connection: sqlite3.Connection, path: Path) -> _Loaded:
    try:
        tasks = [
            _task_from_json(task_id, data)
            for task_id, data in connection.execute("SELECT task_id, data FROM tasks ORDER BY seq")
        ]
        # A key still in flight belongs to a create that was never answered: let it be retried.
        connection.execute("DELETE FROM idempotency WHERE task_id IS NULL")
        keys = [
            (owner, key, IdempotencyRecord(fingerprint, first_seen, task_id))
            for owner, key, fingerprint, first_seen, task_id in connection.execute(
                "SELECT * FROM idempotency ORDER BY first_seen"
            )
        ]
        owed = tuple(
            Delivery(task_id, copy, attempt, due, _fault_from_json(fault))
            for task_id, copy, attempt, due, fault in connection.execute(
                "SELECT * FROM outbox ORDER BY due, task_id, copy"
            )
        )
        meta = dict(connection.execute("SELECT name, value FROM meta").fetchall())
        opened = int(meta.get("opened", 0))
        connection.execute(_PUT_META, ("opened", str(opened + 1)))
        clock = ClockReading(**json.loads(meta["clock"])) if "clock" in meta else None
        rules = json.loads(meta["rules"]) if "rules" in meta else None
    except Exception as exc:  # any row that does not read back means the file is damaged
        raise StateError(f"{path}: the state file is damaged: {exc!r}") from None
    return _Loaded(tasks, keys, Saved(opened, rules, clock, owed))


def _commit(
    connection: sqlite3.Connection, writes: Iterable[_Write], path: Path
) -> Exception | None:
    try:
        connection.execute("BEGIN IMMEDIATE")
        for sql, params in writes:
            connection.execute(sql, params)
        connection.execute("COMMIT")
    except Exception as exc:  # any: the writer thread must live on to answer later barriers
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        log.exception("could not save the fake's state to %s", path)
        return StateError(f"{path}: could not save: {exc}")
    return None


# -- rows ----------------------------------------------------------------------------------------


def _task_json(task: TaskRecord) -> str:
    # ensure_ascii: a prompt may hold lone surrogates, which UTF-8 (and SQLite) cannot.
    return json.dumps(
        {
            "owner": task.owner,
            "model": task.model,
            "route": task.route,
            "prompt": task.prompt,
            "statuses": task.timeline.statuses,
            "times": task.timeline.times,
            "error": task.error,
            "output": asdict(task.output) if task.output is not None else None,
            "callback_url": task.callback_url,
            "base_url": task.base_url,
        },
        separators=(",", ":"),
    )


def _task_from_json(task_id: str, text: str) -> TaskRecord:
    data = json.loads(text)
    error = data["error"]
    output = data["output"]
    return TaskRecord(
        task_id=task_id,
        owner=data["owner"],
        model=data["model"],
        route=data["route"],
        prompt=data["prompt"],
        timeline=Timeline(tuple(data["statuses"]), tuple(data["times"])),
        error=(error[0], error[1]) if error is not None else None,
        output=OutputPlan(**output) if output is not None else None,
        callback_url=data["callback_url"],
        base_url=data["base_url"],
    )


def _fault_json(fault: CallbackFault | None) -> str | None:
    if fault is None:
        return None
    return json.dumps(asdict(fault) | {"kind": fault.kind.value})


def _fault_from_json(text: str | None) -> CallbackFault | None:
    if text is None:
        return None
    data = json.loads(text)
    return CallbackFault(**(data | {"kind": Fault(data["kind"])}))
