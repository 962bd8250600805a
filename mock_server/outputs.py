"""A task's output: what file it will be, its URL, and the file itself. No HTTP here.

Files are never stored: a successful task keeps an `OutputPlan` (size, format, seed), and the
image is rendered from it on first download, then cached, until `expireAt`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .catalog import Model
from .clock import Clock
from .config import OUTPUT_TTL
from .errors import NotFound
from .image_cache import ImageCache
from .images import ImageSpec, image_size, nearest_ratio
from .lifecycle import SUCCESS
from .randomness import MockRandom
from .store import OutputPlan, Store, TaskRecord

__all__ = ["Outputs"]

_FILE_PATH = re.compile(r"/files/(tk-hiapi-[0-9A-Z]{26})/")


class Outputs:
    """Plans, names and serves the files of successful tasks."""

    def __init__(self, store: Store, clock: Clock, images: ImageCache) -> None:
        self.store = store
        self.clock = clock
        self.images = images

    def plan(self, model: Model, params: Mapping[str, Any], rng: MockRandom) -> OutputPlan:
        """The file a task with these (defaulted) parameters makes."""
        ratio = params.get("aspect_ratio", "1:1")
        if ratio == "auto":
            ratio = self._auto_ratio(model, params.get("image_input") or [])
        width, height = model.output_size({**params, "aspect_ratio": ratio})
        ext = str(params.get("output_format", "png"))
        return OutputPlan(
            width=width,
            height=height,
            fmt="png" if ext == "png" else "jpeg",
            ext=ext,
            caption=f"{model.name} · {params.get('resolution')} · {ratio} · {ext}",
            seed=rng.getrandbits(32),
        )

    @staticmethod
    def url(task: TaskRecord) -> str:
        assert task.output is not None
        return f"{task.base_url.rstrip('/')}/files/{task.task_id}/0.{task.output.ext}"

    async def file(self, task_id: str, name: str) -> tuple[bytes, str]:
        """The bytes and media type of an output file; 404 when unknown, unfinished or expired."""
        task = self.store.get(task_id)
        output = task.output if task is not None else None
        if task is None or output is None or name != f"0.{output.ext}":
            raise NotFound("file not found")
        now = self.clock.now()
        if task.timeline.status_at(now) != SUCCESS:
            raise NotFound("file not found")
        if now >= int(task.timeline.finished) + OUTPUT_TTL:
            self.images.discard(task_id)
            raise NotFound("file expired: outputs are kept 7 days")
        spec = ImageSpec(
            output.width, output.height, "png" if output.fmt == "png" else "jpeg",
            (task.prompt, output.caption, task.task_id), output.seed,
        )  # fmt: skip
        return await self.images.get(task_id, spec), f"image/{output.fmt}"

    def _auto_ratio(self, model: Model, references: list[str]) -> str:
        """The first reference image's nearest ratio when the fake can read it, else 1:1.

        Readable without leaving the machine: `data:` URLs and this fake's own output files.
        """
        size = self._reference_size(references[0]) if references else None
        return nearest_ratio(*size, model.ratios) if size else "1:1"

    def _reference_size(self, url: str) -> tuple[int, int] | None:
        if url.startswith("data:"):
            try:
                return image_size(base64.b64decode(url.partition(",")[2], validate=True))
            except (ValueError, binascii.Error):
                return None
        found = _FILE_PATH.search(urlsplit(url).path + "/")
        task = self.store.get(found.group(1)) if found else None
        if task is None or task.output is None:
            return None
        return task.output.width, task.output.height
