"""The request journal: every request the fake answered, as a bounded ring. No HTTP here.

API keys are never kept: an entry shows the key masked (`sk-t…lice`) and filters match on a
digest of it, so `entries(key="sk-test-alice")` still finds that key's requests.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

__all__ = ["Journal", "JournalEntry", "key_digest", "mask_key"]

_MAX_BODY = 64 * 1024
_SECRET_HEADERS = (b"authorization", b"x-mock-token")
_SECRETS_KEPT = 4096  # distinct secret header values whose masked forms are remembered


def mask_key(key: str) -> str:
    """Enough of a key to recognise it, not enough to use it."""
    return key[:4] + "…" + key[-4:] if len(key) > 10 else "…"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One answered request."""

    seq: int
    at: float  # the fake's clock when the request arrived
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # the Authorization key masked
    body: str  # as text, cut at 64 KiB
    status: int
    task_id: str | None
    api_key: str | None  # masked
    duration_ms: float  # wall time to answer

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["headers"] = dict(self.headers)
        return data


class _Raw(NamedTuple):
    """A request as ASGI gave it, its secrets already masked: made a `JournalEntry` when read,
    so recording costs a request next to nothing."""

    seq: int
    at: float
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes | str]]  # a secret's value masked, as text
    body: bytes
    status: int
    task_id: str | None
    api_key: str | None  # masked
    duration_ms: float

    def entry(self) -> JournalEntry:
        return JournalEntry(
            seq=self.seq, at=self.at, method=self.method, path=self.path,
            query=self.query.decode("latin-1"),
            headers={
                name.decode("latin-1"): value if isinstance(value, str) else value.decode("latin-1")
                for name, value in self.headers
            },
            body=self.body.decode("utf-8", "replace"), status=self.status, task_id=self.task_id,
            api_key=self.api_key, duration_ms=self.duration_ms,
        )  # fmt: skip


class Journal:
    """The last `size` requests, oldest first. Thread-safe."""

    def __init__(self, size: int = 10_000) -> None:
        self._entries: deque[tuple[JournalEntry | _Raw, str | None]] = deque(maxlen=size)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._secrets: dict[bytes, tuple[str, str | None, str | None]] = {}

    def record(
        self,
        *,
        at: float,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        status: int,
        task_id: str | None,
        api_key: str | None,
        duration_ms: float,
    ) -> JournalEntry:
        entry = JournalEntry(
            seq=next(self._seq),
            at=at,
            method=method,
            path=path,
            query=query,
            headers=_masked(headers),
            body=body[:_MAX_BODY].decode("utf-8", "replace"),
            status=status,
            task_id=task_id,
            api_key=mask_key(api_key) if api_key else None,
            duration_ms=duration_ms,
        )
        with self._lock:
            self._entries.append((entry, key_digest(api_key) if api_key else None))
        return entry

    def record_asgi(
        self,
        at: float,
        scope: Mapping[str, Any],
        body: bytes,
        status: int,
        task_id: str | None,
        duration_ms: float,
    ) -> None:
        """`record` for a request as an ASGI scope holds it; the API key is the Bearer one."""
        headers: list[tuple[bytes, bytes | str]] = list(scope["headers"])
        digest = masked_key = None
        for index, (name, value) in enumerate(headers):
            if name in _SECRET_HEADERS and isinstance(value, bytes):
                shown, key, key_hash = self._secret(value)
                headers[index] = (name, shown)
                if name == b"authorization":
                    masked_key, digest = key, key_hash
        query = scope.get("query_string", b"")
        with self._lock:
            # tuple.__new__ rather than _Raw(...): the named tuple's own __new__ is Python code,
            # a microsecond on every request.
            raw = tuple.__new__(_Raw, (next(self._seq), at, scope["method"], scope["path"], query,
                                headers, body[:_MAX_BODY], status, task_id, masked_key,
                                duration_ms))  # fmt: skip
            self._entries.append((raw, digest))

    def _secret(self, value: bytes) -> tuple[str, str | None, str | None]:
        """(the header as shown, the Bearer key masked, its digest), worked out once per value."""
        found = self._secrets.get(value)
        if found is None:
            text = value.decode("latin-1")
            shown = _mask_header(text)
            scheme, _, secret = text.partition(" ")
            bearer = secret.strip() if scheme.lower() == "bearer" else ""
            found = (shown, mask_key(bearer), key_digest(bearer)) if bearer else (shown, None, None)
            if len(self._secrets) < _SECRETS_KEPT:
                self._secrets[value] = found
        return found

    def entries(
        self,
        *,
        path: str | None = None,
        task: str | None = None,
        key: str | None = None,
        method: str | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        """Entries oldest first, filtered by exact path, task id, API key and method; `limit`
        keeps the newest ones."""
        digest = key_digest(key) if key else None
        with self._lock:
            kept = list(self._entries)
        found = [
            entry
            for entry, entry_digest in kept
            if (path is None or entry.path == path)
            and (task is None or entry.task_id == task)
            and (digest is None or entry_digest == digest)
            and (method is None or entry.method == method.upper())
        ]
        chosen = found[-limit:] if limit else found
        return [entry.entry() if isinstance(entry, _Raw) else entry for entry in chosen]

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seq = itertools.count(1)
            self._secrets.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _masked(headers: Mapping[str, str]) -> dict[str, str]:
    shown = dict(headers)
    for name, value in headers.items():
        if name.lower() in ("authorization", "x-mock-token"):
            shown[name] = _mask_header(value)
    return shown


def _mask_header(value: str) -> str:
    """A secret header as the journal shows it: its scheme, if any, and the secret masked."""
    scheme, _, secret = value.partition(" ")
    return f"{scheme} {mask_key(secret)}" if secret else mask_key(value)
