"""Tests for mock_server.image_cache: one render per image, off the loop, bounded in bytes."""

from __future__ import annotations

import os
import sys
import threading

import anyio
import pytest

from mock_server import images
from mock_server.image_cache import ImageCache
from mock_server.images import ImageSpec


class FakeRender:
    """Stands in for images.render: counts calls, can hold them and fail on demand.

    Returns ``spec.width`` bytes so tests pick entry sizes through the spec.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.failures = 0
        self._lock = threading.Lock()

    def __call__(self, spec: ImageSpec) -> bytes:
        with self._lock:
            self.calls.append(spec.lines[0])
            self.threads.append(threading.get_ident())
            fail = self.failures > 0
            self.failures -= fail
        self.started.set()
        # A bound, not a synchronisation delay: it only stops a broken test from hanging.
        if not self.release.wait(timeout=10):
            raise TimeoutError("render was never released")
        if fail:
            raise RuntimeError("render failed")
        return spec.lines[0].encode()[:1] * spec.width


@pytest.fixture
def fake_render(monkeypatch: pytest.MonkeyPatch) -> FakeRender:
    fake = FakeRender()
    monkeypatch.setattr(images, "render", fake)
    return fake


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cache_spec(key: str, size: int = 100) -> ImageSpec:
    return ImageSpec(size, 1, "png", (key,), 0)


async def gather_gets(
    fake: FakeRender, cache: ImageCache, key: str, callers: int
) -> list[bytes | Exception]:
    """Results of concurrent gets, with the render held until every caller waits."""
    fake.release.clear()
    results: list[bytes | Exception] = [b""] * callers

    async def call(index: int) -> None:
        try:
            results[index] = await cache.get(key, cache_spec(key))
        except Exception as exc:
            results[index] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for index in range(callers):
                group.start_soon(call, index)
            await anyio.to_thread.run_sync(fake.started.wait)
            await anyio.wait_all_tasks_blocked()
            fake.release.set()
    return results


@pytest.mark.anyio
async def test_cache_serves_second_get_from_memory(fake_render: FakeRender) -> None:
    cache = ImageCache()
    first = await cache.get("a", cache_spec("a"))
    second = await cache.get("a", cache_spec("a"))
    assert first is second
    assert fake_render.calls == ["a"]
    assert "a" in cache
    assert cache.size_bytes == 100


@pytest.mark.anyio
async def test_cache_renders_in_a_worker_thread(fake_render: FakeRender) -> None:
    await ImageCache().get("a", cache_spec("a"))
    assert fake_render.threads != [threading.get_ident()]


@pytest.mark.anyio
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a per-thread priority is Linux's")
async def test_renders_run_at_the_lowest_priority_so_answers_meanwhile_come_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int]] = []

    def note_priority(spec: ImageSpec) -> bytes:
        seen.append((threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0)))
        return b"x"

    monkeypatch.setattr(images, "render", note_priority)
    await ImageCache().get("a", cache_spec("a"))
    ((thread, _),) = seen
    assert thread != threading.get_native_id()
    assert os.getpriority(os.PRIO_PROCESS, thread) == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19  # only that thread


@pytest.mark.anyio
async def test_concurrent_gets_share_one_render(fake_render: FakeRender) -> None:
    cache = ImageCache()
    results = await gather_gets(fake_render, cache, "a", callers=5)
    assert fake_render.calls == ["a"]
    assert results == [b"a" * 100] * 5
    assert "a" in cache


@pytest.mark.anyio
async def test_failed_render_reaches_every_waiter_and_is_not_cached(
    fake_render: FakeRender,
) -> None:
    cache = ImageCache()
    fake_render.failures = 1
    results = await gather_gets(fake_render, cache, "a", callers=3)
    assert fake_render.calls == ["a"]
    assert all(isinstance(result, RuntimeError) for result in results)
    assert "a" not in cache
    assert cache.size_bytes == 0
    assert await cache.get("a", cache_spec("a")) == b"a" * 100
    assert fake_render.calls == ["a", "a"]


@pytest.mark.anyio
async def test_lru_eviction_respects_max_bytes(fake_render: FakeRender) -> None:
    cache = ImageCache(max_bytes=250)
    await cache.get("a", cache_spec("a"))
    await cache.get("b", cache_spec("b"))
    await cache.get("a", cache_spec("a"))  # a is now the most recently used
    await cache.get("c", cache_spec("c"))
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert cache.size_bytes == 200
    await cache.get("d", cache_spec("d", size=250))
    assert ("a" in cache, "c" in cache, "d" in cache) == (False, False, True)
    assert cache.size_bytes == 250
    assert fake_render.calls == ["a", "b", "c", "d"]


@pytest.mark.anyio
async def test_oversized_entry_is_returned_but_not_kept(fake_render: FakeRender) -> None:
    cache = ImageCache(max_bytes=250)
    await cache.get("a", cache_spec("a"))
    assert await cache.get("big", cache_spec("big", size=251)) == b"b" * 251
    assert "big" not in cache
    assert "a" in cache
    assert cache.size_bytes == 100


@pytest.mark.anyio
async def test_discard_and_reset(fake_render: FakeRender) -> None:
    cache = ImageCache()
    for key in "abc":
        await cache.get(key, cache_spec(key))
    cache.discard("b")
    cache.discard("missing")
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert cache.size_bytes == 200
    await cache.get("b", cache_spec("b"))
    assert fake_render.calls == ["a", "b", "c", "b"]
    cache.reset()
    assert cache.size_bytes == 0
    assert not any(key in cache for key in "abc")


@pytest.mark.anyio
async def test_discard_during_render_keeps_result_out_of_cache(fake_render: FakeRender) -> None:
    cache = ImageCache()
    fake_render.release.clear()
    results: list[bytes] = []

    async def get() -> None:
        results.append(await cache.get("a", cache_spec("a")))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(get)
            await anyio.to_thread.run_sync(fake_render.started.wait)
            cache.discard("a")
            fake_render.release.set()
    assert results == [b"a" * 100]
    assert "a" not in cache


@pytest.mark.anyio
async def test_cache_with_real_render() -> None:
    cache = ImageCache()
    spec = ImageSpec(320, 240, "jpeg", ("a banana",), 7)
    data = await cache.get("real", spec)
    assert data == images.render(spec)
    assert images.image_size(data) == (320, 240) and images.image_format(data) == "jpeg"
    assert cache.size_bytes == len(data)


def test_negative_max_bytes_is_rejected() -> None:
    with pytest.raises(ValueError):
        ImageCache(max_bytes=-1)
