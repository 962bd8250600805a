"""The models the fake serves, read from `openapi.yaml`, and how long their tasks take.

A model is whatever `CreateTaskRequest.oneOf` lists: its request schema names the model (and its
`model@route` spellings) and the routes; its input schema carries the defaults, the enums, the
output kind (`x-model`) and the output pixel sizes (`x-output-sizes`). What the spec cannot know,
how long the live model takes, is the `LIVE_LATENCY` table below. Adding a model is a schema in
`openapi.yaml` and, for realistic timings, a row here: data, not code.

    >>> model = catalog().get("Nano-Banana-Pro")
    >>> model.output_size({"aspect_ratio": "16:9", "resolution": "2K"})
    (2752, 1536)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .randomness import MockRandom
from .spec import Spec, spec

__all__ = [
    "LIVE_LATENCY",
    "PROFILES",
    "Catalog",
    "Model",
    "Profile",
    "Timing",
    "catalog",
]

#: Live end-to-end latency per model: (input field it depends on, {value: (median s, p95 s)}).
#: Nano-Banana-Pro: third-party measurements (1K 15-20 s, p95 25 s; 2K 30-40 s, p95 50 s;
#: 4K 50-70 s, p95 90 s).
LIVE_LATENCY: Mapping[str, tuple[str, Mapping[str, tuple[float, float]]]] = {
    "Nano-Banana-Pro": (
        "resolution",
        {"1K": (17.5, 25.0), "2K": (35.0, 50.0), "4K": (60.0, 90.0)},
    ),
}

_DEFAULT_LATENCY = (20.0, 40.0)
_Z95 = 1.6448536269514722


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds a task spends in each non-terminal status."""

    queued: float = 0.0
    handling: float = 0.0
    archiving: float = 0.0

    @property
    def total(self) -> float:
        return self.queued + self.handling + self.archiving


@dataclass(frozen=True, slots=True)
class Model:
    """One model of the catalogue, as `openapi.yaml` describes it."""

    name: str
    request_schema: str
    input_schema: str
    spellings: tuple[str, ...]
    routes: tuple[str, ...]
    output_type: str
    defaults: Mapping[str, Any]
    sizes: Mapping[str, Mapping[str, tuple[int, int]]]

    @property
    def ratios(self) -> tuple[str, ...]:
        return tuple(self.sizes)

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` with every documented default filled in."""
        return {**self.defaults, **params}

    def output_size(self, params: Mapping[str, Any]) -> tuple[int, int]:
        """Pixel size for a concrete `aspect_ratio` and `resolution`."""
        return self.sizes[params["aspect_ratio"]][params["resolution"]]

    def live_latency(self, params: Mapping[str, Any]) -> tuple[float, float]:
        """(median, p95) seconds of the live model for these parameters."""
        field, table = LIVE_LATENCY.get(self.name, ("", {}))
        return table.get(str(params.get(field)), _DEFAULT_LATENCY)


@dataclass(frozen=True, slots=True)
class Profile:
    """How long tasks take and how long a create takes to answer.

    `realistic` draws from the live latencies; `fast` finishes well under a second; `instant`
    finishes at creation; `fixed` (used by tests) always takes `fixed`.
    """

    name: str
    accept: float = 0.0
    fixed: Timing | None = None

    def draw(self, model: Model, params: Mapping[str, Any], rng: MockRandom) -> Timing:
        if self.fixed is not None:
            return self.fixed
        if self.name == "realistic":
            return _realistic(model.live_latency(params), rng)
        if self.name == "fast":
            return Timing(rng.uniform(0.02, 0.08), rng.uniform(0.1, 0.3), rng.uniform(0.02, 0.08))
        return Timing()


PROFILES: Mapping[str, Profile] = {
    "realistic": Profile("realistic", accept=0.2),
    "fast": Profile("fast"),
    "instant": Profile("instant"),
}


def _realistic(latency: tuple[float, float], rng: MockRandom) -> Timing:
    # Log-normal through the median and the p95, clipped to [median/2, 2*p95].
    median, p95 = latency
    sigma = math.log(p95 / median) / _Z95
    total = min(max(rng.lognormvariate(math.log(median), sigma), median / 2), 2 * p95)
    queued = rng.uniform(0.5, 3.0)
    archiving = rng.uniform(0.5, 2.0)
    return Timing(queued, max(total - queued - archiving, 1.0), archiving)


class Catalog:
    """The models of a spec, by every spelling of their name."""

    def __init__(self, document: Spec) -> None:
        self.models: dict[str, Model] = {}
        for ref in document.schema("CreateTaskRequest")["oneOf"]:
            model = _model(document, ref["$ref"].rsplit("/", 1)[-1])
            self.models[model.name] = model

    def get(self, name: str) -> Model | None:
        """The model called `name` (without a route suffix)."""
        return self.models.get(name)

    def names(self) -> list[str]:
        return sorted(self.models)


def _model(document: Spec, request_schema: str) -> Model:
    request = document.schema(request_schema)
    props = request["properties"]
    spellings = tuple(props["model"]["enum"])
    input_schema = props["input"]["$ref"].rsplit("/", 1)[-1]
    body = document.schema(input_schema)
    routes = tuple(r for r in props.get("route", {}).get("enum", ["default"]) if r)
    sizes = {
        ratio: {res: (int(w), int(h)) for res, (w, h) in by_res.items()}
        for ratio, by_res in body.get("x-output-sizes", {}).get("sizes", {}).items()
    }
    defaults = {k: v["default"] for k, v in body["properties"].items() if "default" in v}
    return Model(
        name=min(spellings, key=len),
        request_schema=request_schema,
        input_schema=input_schema,
        spellings=spellings,
        routes=routes,
        output_type=body.get("x-model", {}).get("output-type", "image"),
        defaults=defaults,
        sizes=sizes,
    )


@functools.cache
def catalog() -> Catalog:
    """The catalogue of the project's `openapi.yaml`."""
    return Catalog(spec())
