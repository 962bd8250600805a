"""What `openapi.yaml` promises, read once: the status machine, the output sizes, callback delivery.

Nothing here is written a second time by hand: every enum, move and size comes from the document.

    >>> contract = facts()
    >>> contract.reachable("queued", "success"), contract.reachable("success", "handling")
    (True, False)
    >>> contract.size("16:9", "1K")
    (1376, 768)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mock_server.spec import Spec, spec

__all__ = ["OUTPUT_TTL", "TEMP_OUTPUT_TTL", "Facts", "facts"]

#: `expireAt = completed + 604800`: outputs are kept 7 days (docs).
OUTPUT_TTL = 604_800
#: With `storage: temp`, one documented example shows 1 day instead (sdk, copied from the docs).
TEMP_OUTPUT_TTL = 86_400


@dataclass(frozen=True, slots=True)
class Facts:
    """The parts of the contract the lifecycle and callback checks need."""

    document: Spec
    statuses: tuple[str, ...]
    moves: frozenset[tuple[str, str]]
    model: str
    output_type: str
    sizes: Mapping[str, Mapping[str, tuple[int, int]]]
    retry_delays: tuple[float, ...]
    callback_schema: str

    @property
    def terminal(self) -> frozenset[str]:
        """Statuses a task never leaves: those with no move out of them."""
        leaving = {a for a, _ in self.moves}
        return frozenset(s for s in self.statuses if s not in leaving)

    @property
    def first(self) -> str:
        return self.statuses[0]

    def reachable(self, start: str, end: str) -> bool:
        """Whether `end` can follow `start` through one or more documented moves."""
        seen, frontier = {start}, [start]
        while frontier:
            current = frontier.pop()
            for a, b in self.moves:
                if a == current and b not in seen:
                    if b == end:
                        return True
                    seen.add(b)
                    frontier.append(b)
        return False

    def size(self, ratio: str, resolution: str) -> tuple[int, int]:
        """The exact pixel size (width, height) of an output."""
        return self.sizes[ratio][resolution]

    @property
    def ratios(self) -> tuple[str, ...]:
        return tuple(self.sizes)


@functools.cache
def facts() -> Facts:
    """The project's contract, loaded from `openapi.yaml` once per process."""
    document = spec()
    status = document.schema("TaskStatus")
    model_input = document.schema("NanoBananaProInput")
    sizes = {
        ratio: {res: (int(wh[0]), int(wh[1])) for res, wh in by_res.items()}
        for ratio, by_res in model_input["x-output-sizes"]["sizes"].items()
    }
    callback = _callback_operation(document)
    body = callback["requestBody"]["content"]["application/json"]["schema"]
    delivery = callback.get("x-delivery", {})
    return Facts(
        document=document,
        statuses=tuple(status["enum"]),
        moves=frozenset((str(a), str(b)) for a, b in status["x-transitions"]["moves"]),
        model=str(model_input["x-model"]["name"]),
        output_type=str(model_input["x-model"]["output-type"]),
        sizes=sizes,
        retry_delays=tuple(float(d) for d in delivery.get("retry-delays", ())),
        callback_schema=str(body["$ref"]),
    )


def _callback_operation(document: Spec) -> Mapping[str, Any]:
    create = document.document["paths"]["/v1/tasks"]["post"]
    for expressions in create["callbacks"].values():
        for item in expressions.values():
            operation: Mapping[str, Any] = item["post"]
            return operation
    raise LookupError("openapi.yaml describes no callback for createTask")
