"""Output conformance: every output of a successful task downloads, is of the model's output
type, is really the requested format (magic bytes, then Pillow), and has exactly the pixel size
`x-output-sizes` gives for its ratio and resolution.

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff(b"\\xff\\xd8\\xff\\xe0...."), sniff(b"GIF89a")
    ('png', 'jpeg', None)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

from .context import Context, Skip, TaskRun, Verdict, verdict
from .results import Finding
from .tasks import planned

__all__ = ["run", "sniff"]

_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg"}
#: `output_format` as the model page spells it, to the file format it means.
_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg"}
_PILLOW = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg"}


def sniff(data: bytes) -> str | None:
    """`png` or `jpeg` from the file's first bytes, else None."""
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


@dataclass(slots=True)
class _Download:
    index: int
    url: str
    response: httpx.Response | None
    error: str | None = None


def run(ctx: Context, task: TaskRun) -> None:
    """The four output checks on one successful task."""
    downloads: list[_Download] | None = None

    def fetched() -> list[_Download]:
        nonlocal downloads
        if downloads is None:
            downloads = _download(ctx, task)
        return downloads

    checks: list[tuple[str, Callable[[], Verdict]]] = [
        ("outputs.download", lambda: _downloaded(ctx, fetched())),
        ("outputs.type", lambda: _types(ctx, task)),
        ("outputs.format", lambda: _format(ctx, task, fetched())),
        ("outputs.pixel_size", lambda: _size(ctx, task, fetched())),
    ]
    for name, check in checks:
        ctx.run(name, check, source="docs", subject=task.purpose)


def _items(task: TaskRun) -> list[dict[str, object]]:
    followed = task.followed
    final = followed.final if followed is not None else None
    if final is None or final.get("status") != "success":
        raise Skip("the task did not succeed, so it has no outputs")
    items = final.get("output")
    if not isinstance(items, list) or not items:
        raise Skip("the successful task lists no outputs (lifecycle.task_schema reports it)")
    return [o for o in items if isinstance(o, dict)]


def _download(ctx: Context, task: TaskRun) -> list[_Download]:
    found: list[_Download] = []
    for index, item in enumerate(_items(task)):
        url = item.get("url")
        if not isinstance(url, str):
            found.append(_Download(index, repr(url), None, "its url is not a string"))
            continue
        try:
            # Output links are not API calls: no key goes with them.
            found.append(_Download(index, url, ctx.http.get(url, key=None)))
        except httpx.HTTPError as exc:
            found.append(_Download(index, url, None, f"{type(exc).__name__}: {exc}"))
    return found


def _downloaded(ctx: Context, downloads: list[_Download]) -> Verdict:
    findings: list[Finding] = []
    for d in downloads:
        if d.response is None:
            findings.append(Finding(f"output {d.index} ({d.url}) did not download: {d.error}"))
        elif d.response.status_code != 200 or not d.response.content:
            status = d.response.status_code
            findings.append(
                ctx.finding(f"output {d.index} answered {status} (empty or not 200)", d.response)
            )
    return verdict(findings, f"{len(downloads)} output(s) downloaded")


def _types(ctx: Context, task: TaskRun) -> Verdict:
    expected = ctx.facts.output_type
    findings = [
        Finding(f"output {i} has type {item.get('type')!r}, expected {expected!r}")
        for i, item in enumerate(_items(task))
        if item.get("type") != expected
    ]
    return verdict(findings, f"every output is of type {expected!r}")


def _bodies(downloads: list[_Download]) -> list[tuple[_Download, bytes]]:
    ok = [(d, d.response.content) for d in downloads if d.response is not None]
    ok = [(d, body) for d, body in ok if body and d.response and d.response.status_code == 200]
    if not ok:
        raise Skip("no output downloaded (outputs.download reports why)")
    return ok


def _format(ctx: Context, task: TaskRun, downloads: list[_Download]) -> Verdict:
    asked = planned(task).output_format
    expected = _FORMATS.get(asked, asked)
    findings: list[Finding] = []
    for d, body in _bodies(downloads):
        assert d.response is not None
        magic, pillow = sniff(body), _pillow_format(body)
        kind = d.response.headers.get("content-type", "").split(";")[0].strip().lower()
        if magic != expected:
            findings.append(
                ctx.finding(
                    f"output {d.index}: magic bytes say {magic or 'neither png nor jpeg'}, "
                    f"asked {asked}",
                    d.response,
                )
            )
        elif pillow != expected:
            findings.append(
                ctx.finding(
                    f"output {d.index}: Pillow reads {pillow or 'no image'}, asked {asked}",
                    d.response,
                )
            )
        elif kind.startswith("image/") and kind != f"image/{expected}":
            findings.append(
                ctx.finding(
                    f"output {d.index}: Content-Type {kind} for a {expected} file", d.response
                )
            )
    return verdict(findings, f"{expected}, as asked with output_format {asked!r}")


def _size(ctx: Context, task: TaskRun, downloads: list[_Download]) -> Verdict:
    plan = planned(task)
    if plan.ratio not in ctx.facts.sizes:
        raise Skip(f"no fixed size for aspect_ratio {plan.ratio!r}")
    width, height = ctx.facts.size(plan.ratio, plan.resolution)
    findings: list[Finding] = []
    for d, body in _bodies(downloads):
        assert d.response is not None
        size = _pillow_size(body)
        if size != (width, height):
            shown = f"{size[0]}x{size[1]}" if size else "unreadable"
            findings.append(
                ctx.finding(
                    f"output {d.index} is {shown}, expected {width}x{height} "
                    f"for {plan.ratio} at {plan.resolution}",
                    d.response,
                )
            )
    return verdict(findings, f"{width}x{height} for {plan.ratio} at {plan.resolution}")


def _pillow_format(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            return _PILLOW.get(image.format or "")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def _pillow_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
