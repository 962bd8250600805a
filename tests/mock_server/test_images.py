"""Tests for mock_server.images: rendering, probing and ratio matching."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import pytest
from PIL import Image, ImageChops

from mock_server.images import (
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
