"""Deterministic placeholder images for the mock server, plus a bounded render cache."""

from __future__ import annotations

import colorsys
import io
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

__all__ = ["ImageSpec", "image_format", "image_size", "nearest_ratio", "render"]

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_RGB = tuple[int, int, int]

# Background is computed on a coarse grid; NEAREST upscaling keeps 4K renders cheap and
# turns the gradient into visible colour steps.
_GRID = 40
# The canvas is drawn in palette indices (1 byte per pixel): PNG then skips per-row filter
# selection, which is what makes RGB PNG encoding slow at 4K. Palette slots:
_GRADIENT, _GRADIENT_STEPS = 0, 128
_BLOBS, _BLOB_SHADES = 128, 8
_PROMPT_RAMP = 160  # [0] is the panel colour, [-1] the prompt text colour
_CAPTION_RAMP = 192
_RAMP_STEPS = 32
_WHITE: _RGB = (255, 255, 255)
_ELLIPSIS = "…"
# Control characters would switch Pillow into multiline mode or draw junk boxes.
_CONTROL_TO_SPACE = dict.fromkeys((*range(32), *range(127, 160)), " ")
# Pillow reports multi-picture JPEGs as MPO; they are still JPEG files.
_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg"}
_TEXT_COLOUR: _RGB = (246, 246, 246)
_CAPTION_COLOUR: _RGB = (196, 200, 208)


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What to draw: pixel size, encoding, text lines (prompt first) and colour seed."""

    width: int
    height: int
    fmt: Literal["png", "jpeg"]
    lines: tuple[str, ...]
    seed: int


def render(spec: ImageSpec) -> bytes:
    """Encode a deterministic picture showing ``spec.lines`` on a seed-derived background."""
    if spec.width <= 0 or spec.height <= 0:
        raise ValueError(f"invalid image size {spec.width}x{spec.height}")
    rng = random.Random(spec.seed)
    palette = _palette(rng)
    canvas = _background(spec.width, spec.height, rng)
    _draw_text(canvas, spec.lines)
    canvas.putpalette(palette)
    return _encode(canvas, spec.fmt)


def image_size(data: bytes) -> tuple[int, int]:
    """Pixel size of PNG/JPEG bytes, read from the header only."""
    with _open(data) as image:
        return image.size


def image_format(data: bytes) -> str:
    """``"png"`` or ``"jpeg"``; ValueError for anything else."""
    with _open(data) as image:
        fmt = _FORMATS.get(image.format or "")
    if fmt is None:
        raise ValueError("not a PNG or JPEG image")
    return fmt


def nearest_ratio(width: int, height: int, ratios: Iterable[str]) -> str:
    """The ``"W:H"`` string closest to width/height on a log scale; other strings are skipped."""
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid size {width}x{height}")
    target = math.log(width / height)
    best: tuple[float, str] | None = None
    for ratio in ratios:
        value = _parse_ratio(ratio)
        if value is None:
            continue
        distance = abs(math.log(value) - target)
        if best is None or distance < best[0]:
            best = (distance, ratio)
    if best is None:
        raise ValueError("no aspect ratio to choose from")
    return best[1]


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
    except UnidentifiedImageError as exc:
        raise ValueError("not a PNG or JPEG image") from exc


def _parse_ratio(ratio: str) -> float | None:
    left, sep, right = ratio.partition(":")
    if not sep:
        return None
    try:
        value = float(left) / float(right)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def _palette(rng: random.Random) -> list[int]:
    """Flat RGB palette laid out as described next to the slot constants."""
    hue = rng.random()
    base = _hsv(hue, rng.uniform(0.45, 0.9), rng.uniform(0.55, 0.95))
    accent = _hsv(hue + rng.uniform(0.2, 0.5), rng.uniform(0.45, 0.9), rng.uniform(0.55, 0.95))
    blob = _hsv(hue + rng.uniform(0.55, 0.8), rng.uniform(0.3, 0.8), rng.uniform(0.6, 1.0))
    panel = _hsv(hue, 0.5, 0.14)  # dark enough for light text over any background
    steps = _GRADIENT_STEPS - 1
    slots: list[tuple[int, list[_RGB]]] = [
        (_GRADIENT, [_mix(base, accent, i / steps) for i in range(_GRADIENT_STEPS)]),
        (_BLOBS, [_mix(blob, _WHITE, i / 16) for i in range(_BLOB_SHADES)]),
        (_PROMPT_RAMP, _ramp(panel, _TEXT_COLOUR)),
        (_CAPTION_RAMP, _ramp(panel, _CAPTION_COLOUR)),
    ]
    colours: list[_RGB] = [(0, 0, 0)] * 256
    for start, entries in slots:
        colours[start : start + len(entries)] = entries
    return [channel for colour in colours for channel in colour]


def _ramp(background: _RGB, ink: _RGB) -> list[_RGB]:
    return [_mix(background, ink, i / (_RAMP_STEPS - 1)) for i in range(_RAMP_STEPS)]


def _hsv(hue: float, saturation: float, value: float) -> _RGB:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _mix(first: _RGB, second: _RGB, t: float) -> _RGB:
    red, green, blue = (round(a + (b - a) * t) for a, b in zip(first, second, strict=True))
    return red, green, blue


def _background(width: int, height: int, rng: random.Random) -> Image.Image:
    """Palette-index canvas: stepped diagonal gradient plus a few discs."""
    longest = max(width, height)
    cols = max(1, round(_GRID * width / longest))
    rows = max(1, round(_GRID * height / longest))
    angle = rng.uniform(0.0, 2 * math.pi)
    dx, dy = math.cos(angle), math.sin(angle)
    span = abs(dx) * (cols - 1) + abs(dy) * (rows - 1) or 1.0
    offset = min(0.0, dx * (cols - 1)) + min(0.0, dy * (rows - 1))
    grid = Image.new("P", (cols, rows))
    grid.putdata(
        [
            _GRADIENT + round((dx * col + dy * row - offset) / span * (_GRADIENT_STEPS - 1))
            for row in range(rows)
            for col in range(cols)
        ]
    )
    canvas = grid.resize((width, height), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    shortest = min(width, height)
    for _ in range(rng.randint(2, 5)):
        x, y = rng.random() * width, rng.random() * height
        radius = rng.uniform(0.08, 0.3) * shortest
        shade = _BLOBS + rng.randrange(_BLOB_SHADES)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=shade)
    return canvas


@dataclass(frozen=True, slots=True)
class _TextBlock:
    """Wrapped prompt and caption lines with the fonts and line steps to draw them."""

    prompt: tuple[str, ...]
    captions: tuple[str, ...]
    prompt_font: _Font
    caption_font: _Font
    prompt_step: int
    caption_step: int
    padding: int

    @property
    def gap(self) -> int:
        return self.caption_step // 2 if self.prompt and self.captions else 0

    @property
    def prompt_height(self) -> int:
        return len(self.prompt) * self.prompt_step

    @property
    def width(self) -> int:
        return max(round(font.getlength(text)) for _, text, font in self.rows())

    @property
    def height(self) -> int:
        return self.prompt_height + self.gap + len(self.captions) * self.caption_step

    def rows(self) -> Iterator[tuple[int, str, _Font]]:
        """(top offset, text, font) for every line."""
        for index, text in enumerate(self.prompt):
            yield index * self.prompt_step, text, self.prompt_font
        top = self.prompt_height + self.gap
        for index, text in enumerate(self.captions):
            yield top + index * self.caption_step, text, self.caption_font


def _layout_text(width: int, height: int, lines: tuple[str, ...]) -> _TextBlock | None:
    # Sizes follow the image area so text is equally readable at 1K and 4K.
    size = max(10, round(math.sqrt(width * height) / 28))
    padding = round(size * 0.6)
    inset = 2 * (round(min(width, height) * 0.06) + padding)
    max_width, max_height = max(1, width - inset), max(0, height - inset)
    prompt_font = ImageFont.load_default(size=size)
    caption_font = ImageFont.load_default(size=max(8, round(size * 0.5)))
    prompt_step, caption_step = _line_height(prompt_font), _line_height(caption_font)
    caption_line = _Line.of(caption_font, max_width)
    captions = [caption_line.single(_clean(line)) for line in lines[1:]]
    captions = captions[: max_height // caption_step]
    # Keep part of the background visible even for very long prompts.
    room = min(max_height - len(captions) * caption_step, max_height * 2 // 3)
    prompt = _wrap(_clean(lines[0]) if lines else "", prompt_font, max_width, room // prompt_step)
    if not prompt and not captions:
        return None
    return _TextBlock(
        prompt=tuple(prompt),
        captions=tuple(captions),
        prompt_font=prompt_font,
        caption_font=caption_font,
        prompt_step=prompt_step,
        caption_step=caption_step,
        padding=padding,
    )


def _draw_text(canvas: Image.Image, lines: tuple[str, ...]) -> None:
    """Prompt, then captions, on a dark rounded panel centred on the canvas."""
    block = _layout_text(canvas.width, canvas.height, lines)
    if block is None:
        return
    width, height, pad = block.width, block.height, block.padding
    left, top = (canvas.width - width) // 2, (canvas.height - height) // 2
    ImageDraw.Draw(canvas).rounded_rectangle(
        (left - pad, top - pad, left + width + pad, top + height + pad),
        radius=pad,
        fill=_PROMPT_RAMP,
    )
    _paste_text(canvas, block, left, top)


def _paste_text(canvas: Image.Image, block: _TextBlock, left: int, top: int) -> None:
    # Antialiased text is drawn on a greyscale layer and mapped onto the palette ramps.
    # The bleed margin catches glyph overhang and still lies inside the rounded corners.
    width, height, bleed = block.width, block.height, block.padding // 2
    layer = Image.new("L", (width + 2 * bleed, height + 2 * bleed))
    draw = ImageDraw.Draw(layer)
    for y, text, font in block.rows():
        draw.text((bleed, bleed + y), text, font=font, fill=255)
    split = bleed + block.prompt_height + block.gap // 2
    for upper, lower, ramp in ((0, split, _PROMPT_RAMP), (split, layer.height, _CAPTION_RAMP)):
        if lower > upper:
            part = layer.crop((0, upper, layer.width, lower)).point(_ramp_lut(ramp))
            indices = Image.frombytes("P", part.size, part.tobytes())
            canvas.paste(indices, (left - bleed, top - bleed + upper))


def _ramp_lut(ramp: int) -> list[int]:
    return [ramp + value * (_RAMP_STEPS - 1) // 255 for value in range(256)]


def _line_height(font: _Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return ascent + descent
    return round(font.getbbox("Ag")[3]) + 2


def _clean(text: str) -> str:
    return text.translate(_CONTROL_TO_SPACE)


@dataclass(frozen=True, slots=True)
class _Line:
    """Measures text against one line width in one font."""

    font: _Font
    max_width: int
    # No line can hold more characters than this; it bounds every measurement so that
    # a 10000-character prompt costs no more than one that just overflows.
    max_chars: int

    @classmethod
    def of(cls, font: _Font, max_width: int) -> _Line:
        narrowest = max(1, round(font.getlength("i") / 2))
        return cls(font, max_width, max_width // narrowest + 1)

    def fits(self, text: str) -> bool:
        return len(text) <= self.max_chars and self.font.getlength(text) <= self.max_width

    def prefix(self, text: str, max_width: int, minimum: int = 1) -> int:
        """Longest prefix length that fits; at least ``minimum`` so wrapping always advances."""
        low, high = minimum, min(len(text), self.max_chars)
        while low < high:
            middle = (low + high + 1) // 2
            if self.font.getlength(text[:middle]) <= max_width:
                low = middle
            else:
                high = middle - 1
        return low

    def ellipsize(self, text: str) -> str:
        room = max(0, round(self.max_width - self.font.getlength(_ELLIPSIS)))
        return text[: self.prefix(text, room, minimum=0)].rstrip() + _ELLIPSIS

    def single(self, text: str) -> str:
        text = " ".join(text.split())
        return text if self.fits(text) else self.ellipsize(text)


def _wrap(text: str, font: _Font, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap; the last line ends in an ellipsis when the text does not fit."""
    if max_lines <= 0:
        return []
    measure = _Line.of(font, max_width)
    budget = max_lines * measure.max_chars
    words = text[:budget].split()
    lines: list[str] = []
    line = ""
    index = 0
    while index < len(words):
        word = words[index]
        candidate = f"{line} {word}" if line else word
        if measure.fits(candidate):
            line, index = candidate, index + 1
        elif len(lines) + 1 == max_lines:
            return [*lines, measure.ellipsize(candidate)]
        elif line:
            lines.append(line)
            line = ""
        else:
            cut = measure.prefix(word, max_width)
            lines.append(word[:cut])
            words[index] = word[cut:]
    if line:
        lines.append(line)
    if text[budget:].strip() and lines:
        lines[-1] = measure.ellipsize(lines[-1])
    return lines


def _encode(canvas: Image.Image, fmt: Literal["png", "jpeg"]) -> bytes:
    buffer = io.BytesIO()
    if fmt == "png":
        # Speed over size: level 1 is several times faster than the default on 4K frames.
        canvas.save(buffer, "PNG", compress_level=1)
    elif fmt == "jpeg":
        canvas.convert("RGB").save(buffer, "JPEG", quality=85)
    else:
        raise ValueError(f"unsupported image format {fmt!r}")
    return buffer.getvalue()
