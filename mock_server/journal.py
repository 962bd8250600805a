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
from typing import Any

__all__ = ["Journal", "JournalEntry", "key_digest", "mask_key"]

_MAX_BODY = 64 * 1024


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


class Journal:
    """The last `size` requests, oldest first. Thread-safe."""

    def __init__(self, size: int = 10_000) -> None:
        self._entries: deque[tuple[JournalEntry, str | None]] = deque(maxlen=size)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

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
            found = [
                entry
                for entry, entry_digest in self._entries
                if (path is None or entry.path == path)
                and (task is None or entry.task_id == task)
                and (digest is None or entry_digest == digest)
                and (method is None or entry.method == method.upper())
            ]
        return found[-limit:] if limit else found

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seq = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)


def _masked(headers: Mapping[str, str]) -> dict[str, str]:
    shown = dict(headers)
    for name, value in headers.items():
        if name.lower() in ("authorization", "x-mock-token"):
            scheme, _, secret = value.partition(" ")
            shown[name] = f"{scheme} {mask_key(secret)}" if secret else mask_key(value)
    return shown
