"""Images rendered once, off the event loop, and kept: a cache bounded in bytes (LRU).

Concurrent requests for an image not yet rendered share one render; renders run on threads of
their own at the lowest priority, so a 4K render does not slow the answers given meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import anyio

from . import images
from .images import ImageSpec

__all__ = ["ImageCache"]


_RENDERERS: list[ThreadPoolExecutor] = []
_RENDERERS_LOCK = threading.Lock()


def _renderers() -> ThreadPoolExecutor:
    """The threads images are rendered on, made on first use."""
    with _RENDERERS_LOCK:
        if not _RENDERERS:
            _RENDERERS.append(
                ThreadPoolExecutor(
                    max_workers=min(4, os.cpu_count() or 1),
                    thread_name_prefix="hiapi-mock-render",
                    initializer=_yield_to_requests,
                )
            )
        return _RENDERERS[0]


def _yield_to_requests() -> None:
    # A render thread runs at the lowest priority: on a small machine a 4K render otherwise
    # slows every answer given meanwhile (measured in bench/). Linux alone sets a priority per
    # thread; elsewhere the call would lower the whole process, so it is not made.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _render(spec: ImageSpec) -> bytes:
    # `images.render` looked up at call time, so tests can monkeypatch it.
    return images.render(spec)


class _Pending:
    """One in-flight render that concurrent callers for the same key wait on."""

    __slots__ = ("done", "error", "keep", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: bytes | None = None
        self.error: Exception | None = None
        self.keep = True


class ImageCache:
    """Renders images off the event loop and keeps them, bounded in bytes (LRU).

    Not thread-safe: use it from a single event loop.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._pending: dict[str, _Pending] = {}
        self._size = 0

    async def get(self, key: str, spec: ImageSpec) -> bytes:
        """Cached bytes for ``key``, rendering ``spec`` once if absent."""
        while True:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
                return data
            pending = self._pending.get(key)
            if pending is None:
                return await self._render(key, spec)
            await pending.done.wait()
            if pending.error is not None:
                raise pending.error
            if pending.result is not None:
                return pending.result
            # The rendering task was cancelled before finishing: take over.

    def discard(self, key: str) -> None:
        """Drop one entry; a render in flight for it will not be stored."""
        data = self._entries.pop(key, None)
        if data is not None:
            self._size -= len(data)
        pending = self._pending.get(key)
        if pending is not None:
            pending.keep = False

    def reset(self) -> None:
        """Drop everything, including results of renders still in flight."""
        self._entries.clear()
        self._size = 0
        for pending in self._pending.values():
            pending.keep = False

    @property
    def size_bytes(self) -> int:
        return self._size

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    async def _render(self, key: str, spec: ImageSpec) -> bytes:
        pending = self._pending[key] = _Pending()
        try:
            data = await asyncio.get_running_loop().run_in_executor(_renderers(), _render, spec)
        except Exception as exc:
            pending.error = exc
            raise
        else:
            pending.result = data
            if pending.keep:
                self._store(key, data)
            return data
        finally:
            del self._pending[key]
            pending.done.set()

    def _store(self, key: str, data: bytes) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old)
        if len(data) > self._max_bytes:
            return
        self._entries[key] = data
        self._size += len(data)
        while self._size > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)
