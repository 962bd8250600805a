"""Tests for mock_server.images: rendering, probing, ratio matching and the render cache."""

from __future__ import annotations

import io
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import anyio
import pytest
from PIL import Image, ImageChops

from mock_server import images
from mock_server.images import (
    ImageCache,
    ImageSpec,
    image_format,
    image_size,
    nearest_ratio,
    render,
)

Fmt = Literal["png", "jpeg"]

PROMPT = "A photorealistic banana surfing a huge wave at sunset, cinematic lighting"
CAPTIONS = ("Nano-Banana-Pro · 2K · 16:9 · png", "tk-hiapi-01HZX3Y8Q9W7E6R5T4Y3U2I1O0")
SIZES = [(6336, 2688), (3392, 5056), (768, 1376), (1024, 1024), (2752, 1536), (64, 48), (1, 1)]
FORMATS: list[Fmt] = ["png", "jpeg"]
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


def make_spec(
    width: int = 1024,
    height: int = 1024,
    fmt: Fmt = "png",
    prompt: str = PROMPT,
    seed: int = 7,
    captions: tuple[str, ...] = CAPTIONS,
) -> ImageSpec:
    return ImageSpec(width, height, fmt, (prompt, *captions), seed)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def changed_pixels(first: bytes, second: bytes) -> tuple[int, tuple[int, int, int, int] | None]:
    """Number of clearly different pixels (ignoring JPEG noise) and their bounding box."""
    diff = ImageChops.difference(decode(first).convert("RGB"), decode(second).convert("RGB"))
    mask = diff.convert("L").point(lambda value: 255 if value > 64 else 0)
    return mask.histogram()[255], mask.getbbox()


# --- render ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_render_has_exact_size_and_real_format(width: int, height: int, fmt: Fmt) -> None:
    data = render(make_spec(width, height, fmt))
    image = decode(data)
    assert image.format == PIL_FORMATS[fmt]
    assert image.size == (width, height)
    assert image_size(data) == (width, height)
    assert image_format(data) == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_is_deterministic(fmt: Fmt) -> None:
    assert render(make_spec(fmt=fmt)) == render(make_spec(fmt=fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_different_prompt_gives_different_bytes(fmt: Fmt) -> None:
    assert render(make_spec(fmt=fmt, prompt="a red fox")) != render(
        make_spec(fmt=fmt, prompt="a red box")
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_different_seed_gives_visibly_different_background(fmt: Fmt) -> None:
    first, second = render(make_spec(fmt=fmt, seed=1)), render(make_spec(fmt=fmt, seed=2))
    assert first != second
    count, _ = changed_pixels(first, second)
    assert count > 1024 * 1024 // 10


def test_render_is_thread_safe() -> None:
    specs = [make_spec(512, 384, fmt, f"prompt {i}", i) for i in range(8) for fmt in FORMATS]
    expected = [render(spec) for spec in specs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(render, specs)) == expected


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("width", "height"), [(768, 1376), (1024, 1024), (6336, 2688)])
def test_prompt_text_is_drawn_and_scales_with_the_image(width: int, height: int, fmt: Fmt) -> None:
    # Digits have equal advance widths, so both renders share the panel and differ only
    # where glyphs were drawn.
    first = render(make_spec(width, height, fmt, prompt="0123456789 0123456789"))
    second = render(make_spec(width, height, fmt, prompt="9876543210 9876543210"))
    count, bbox = changed_pixels(first, second)
    assert bbox is not None
    # Text covers a similar share of the picture at every size, so it stays readable.
    assert count > width * height // 1000
    left, top, right, bottom = bbox
    assert bottom - top > height // 100
    assert width // 10 < left < right < width - width // 10
    assert height // 10 < top < bottom < height - height // 10


def test_empty_prompt_differs_in_the_text_region() -> None:
    with_prompt = render(make_spec(prompt=PROMPT, captions=()))
    without = render(make_spec(prompt="", captions=()))
    count, bbox = changed_pixels(with_prompt, without)
    assert bbox is not None
    assert count > 1000
    left, top, right, bottom = bbox
    assert left < 512 < right
    assert top < 512 < bottom


def test_captions_are_drawn() -> None:
    with_captions = render(make_spec())
    without = render(make_spec(captions=()))
    count, _ = changed_pixels(with_captions, without)
    assert count > 500


def test_prompt_that_does_not_fit_is_truncated() -> None:
    head = "lorem ipsum dolor sit amet " * 400
    assert render(make_spec(prompt=head + "alpha")) == render(make_spec(prompt=head + "omega"))


ODD_PROMPTS = {
    "long_words": "lorem ipsum dolor sit amet " * 370,
    "one_long_word": "x" * 10000,
    "long_emoji": "🍌🏄‍♂️🌅👨‍👩‍👧‍👦🏳️‍🌈" * 1000,
    "cjk": "一只戴着墨镜的香蕉在日落时冲浪。" * 600,
    "rtl": "موز يركب الأمواج عند الغروب שלום עולם " * 250,
    "controls": "nul\x00tab\tnewline\ncr\r\x1b[31mescape\x7f\x85\u2028\u2029",
    "bidi_marks": "\u202eevil\u202c\u200f\u200e\u200b\ufeff",
    "combining": "e\u0301\u0302\u0303" * 2500,
    "lone_surrogate": "bad \ud800 surrogate \udfff",
    "private_and_unassigned": "\ue000\U0010fffd\U000e0001\u0378",
    "whitespace_only": " \t\n " * 100,
    "empty": "",
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("prompt", ODD_PROMPTS.values(), ids=ODD_PROMPTS.keys())
def test_long_and_odd_prompts_render(prompt: str, fmt: Fmt) -> None:
    spec = make_spec(768, 1376, fmt, prompt, captions=(*CAPTIONS, prompt))
    data = render(spec)
    assert image_size(data) == (768, 1376)
    assert data == render(spec)


def test_no_lines_at_all() -> None:
    data = render(ImageSpec(640, 480, "png", (), 3))
    assert image_size(data) == (640, 480)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-1, 5)])
def test_render_rejects_empty_size(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="size"):
        render(make_spec(width, height))


# --- image_size / image_format ---------------------------------------------------------


def test_image_size_and_format_of_foreign_pillow_output() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (33, 17), "teal").save(buffer, "JPEG")
    assert image_size(buffer.getvalue()) == (33, 17)
    assert image_format(buffer.getvalue()) == "jpeg"


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (4, 4)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize("data", [b"not an image", b"", b"\x89PNG\r\n\x1a\n", gif_bytes()])
def test_non_png_jpeg_bytes_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        image_format(data)
    with pytest.raises(ValueError):
        image_size(data)


# --- nearest_ratio ---------------------------------------------------------------------

RATIOS = ["auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1024, 1024, "1:1"),
        (1344, 768, "16:9"),
        (768, 1344, "9:16"),
        (1536, 672, "21:9"),
        (1200, 896, "4:3"),
        (896, 1152, "4:5"),
        (6336, 2688, "21:9"),
        (3392, 5056, "2:3"),
        (2752, 1536, "16:9"),
        (768, 1376, "9:16"),
        (1100, 1000, "1:1"),
        (1200, 1000, "5:4"),
        (5000, 1000, "21:9"),
        (1000, 5000, "9:16"),
    ],
)
def test_nearest_ratio(width: int, height: int, expected: str) -> None:
    assert nearest_ratio(width, height, RATIOS) == expected


def test_nearest_ratio_compares_on_log_scale() -> None:
    # 2.1 is nearer 1 than 4 on a linear scale but nearer 4 on a log scale.
    assert nearest_ratio(210, 100, ["1:1", "4:1"]) == "4:1"
    assert nearest_ratio(100, 210, ["1:1", "1:4"]) == "1:4"


def test_nearest_ratio_ignores_non_ratios() -> None:
    junk = ["auto", "", "16x9", "a:b", "1:0", "0:1", "-1:1", ":", "1:2:3", "inf:1"]
    assert nearest_ratio(1024, 1024, iter([*junk, "16:9"])) == "16:9"
    with pytest.raises(ValueError):
        nearest_ratio(1024, 1024, junk)


def test_nearest_ratio_rejects_empty_size() -> None:
    with pytest.raises(ValueError):
        nearest_ratio(0, 100, RATIOS)


# --- ImageCache ------------------------------------------------------------------------


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
    spec = make_spec(320, 240, "jpeg")
    data = await cache.get("real", spec)
    assert data == render(spec)
    assert cache.size_bytes == len(data)


def test_negative_max_bytes_is_rejected() -> None:
    with pytest.raises(ValueError):
        ImageCache(max_bytes=-1)
