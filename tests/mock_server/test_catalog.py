"""Tests for mock_server.catalog: the models read from openapi.yaml and how long tasks take."""

from __future__ import annotations

import copy
import statistics
from typing import Any

import pytest

from mock_server.catalog import PROFILES, Catalog, Model, Profile, Timing, catalog
from mock_server.randomness import MockRandom
from mock_server.spec import Spec, spec

NBP = "Nano-Banana-Pro"

#: Output pixel sizes, copied by hand from hiapi-wire-contract.md (Google's published table):
#: ratio -> (1K, 2K, 4K) as (width, height). Written out here to catch a typo in openapi.yaml.
CONTRACT_SIZES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "1:1": ((1024, 1024), (2048, 2048), (4096, 4096)),
    "2:3": ((848, 1264), (1696, 2528), (3392, 5056)),
    "3:2": ((1264, 848), (2528, 1696), (5056, 3392)),
    "3:4": ((896, 1200), (1792, 2400), (3584, 4800)),
    "4:3": ((1200, 896), (2400, 1792), (4800, 3584)),
    "4:5": ((928, 1152), (1856, 2304), (3712, 4608)),
    "5:4": ((1152, 928), (2304, 1856), (4608, 3712)),
    "9:16": ((768, 1376), (1536, 2752), (3072, 5504)),
    "16:9": ((1376, 768), (2752, 1536), (5504, 3072)),
    "21:9": ((1584, 672), (3168, 1344), (6336, 2688)),
}
RESOLUTIONS = ("1K", "2K", "4K")
#: Documented live latency (median s, p95 s) per resolution.
LIVE = {"1K": (17.5, 25.0), "2K": (35.0, 50.0), "4K": (60.0, 90.0)}


def nbp() -> Model:
    model = catalog().get(NBP)
    assert model is not None
    return model


def draws(profile: Profile, params: dict[str, Any], seed: int, n: int) -> list[Timing]:
    rng = MockRandom(seed)
    return [profile.draw(nbp(), params, rng) for _ in range(n)]


# --- the catalogue ----------------------------------------------------------------------


def test_nano_banana_pro_is_in_the_catalogue() -> None:
    assert NBP in catalog().names()
    model = nbp()
    assert model.name == NBP
    assert model.request_schema == "NanoBananaProTaskRequest"
    assert model.input_schema == "NanoBananaProInput"


def test_nano_banana_pro_spellings_routes_and_output_type() -> None:
    model = nbp()
    assert set(model.spellings) == {"Nano-Banana-Pro", "Nano-Banana-Pro@default"}
    assert model.routes == ("default",)
    assert model.output_type == "image"


def test_nano_banana_pro_defaults_are_exactly_the_documented_ones() -> None:
    assert dict(nbp().defaults) == {
        "image_input": [],
        "aspect_ratio": "auto",
        "resolution": "1K",
        "output_format": "png",
    }


def test_catalogue_is_looked_up_by_bare_name_only() -> None:
    assert catalog().get("Nano-Banana-Pro@default") is None
    assert catalog().get("nano-banana-pro") is None
    assert catalog().get("gpt-image-2") is None


def test_with_defaults_fills_only_what_is_missing() -> None:
    params = nbp().with_defaults({"prompt": "a banana", "resolution": "4K"})
    assert params == {
        "prompt": "a banana",
        "image_input": [],
        "aspect_ratio": "auto",
        "resolution": "4K",
        "output_format": "png",
    }


def test_all_thirty_output_sizes_equal_the_contract_table() -> None:
    sizes = nbp().sizes
    expected = {
        ratio: dict(zip(RESOLUTIONS, by_res, strict=True))
        for ratio, by_res in CONTRACT_SIZES.items()
    }
    assert {ratio: dict(by_res) for ratio, by_res in sizes.items()} == expected
    assert sum(len(by_res) for by_res in sizes.values()) == 30


@pytest.mark.parametrize("ratio", sorted(CONTRACT_SIZES))
@pytest.mark.parametrize("index", range(3))
def test_output_size_per_ratio_and_resolution(ratio: str, index: int) -> None:
    params = {"aspect_ratio": ratio, "resolution": RESOLUTIONS[index]}
    assert nbp().output_size(params) == CONTRACT_SIZES[ratio][index]


def test_ratios_are_the_aspect_ratio_enum_without_auto() -> None:
    enum = spec().schema("NanoBananaProInput")["properties"]["aspect_ratio"]["enum"]
    assert set(nbp().ratios) == set(enum) - {"auto"}
    assert set(nbp().ratios) == set(CONTRACT_SIZES)


# --- profiles ---------------------------------------------------------------------------


def test_profiles_offered() -> None:
    assert set(PROFILES) == {"realistic", "fast", "instant"}
    assert all(profile.name == name for name, profile in PROFILES.items())


def test_instant_profile_takes_no_time() -> None:
    for timing in draws(PROFILES["instant"], {"resolution": "4K"}, seed=1, n=20):
        assert timing == Timing(0.0, 0.0, 0.0)
        assert timing.total == 0.0


def test_fast_profile_finishes_well_under_a_second() -> None:
    for seed in range(50):
        for timing in draws(PROFILES["fast"], {"resolution": "4K"}, seed=seed, n=20):
            assert 0.0 < timing.total < 0.5
            assert min(timing.queued, timing.handling, timing.archiving) > 0.0


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_realistic_profile_matches_the_live_latency(resolution: str) -> None:
    median, p95 = LIVE[resolution]
    totals = [t.total for t in draws(PROFILES["realistic"], {"resolution": resolution}, 7, 2000)]
    drawn_median = statistics.median(totals)
    drawn_p95 = statistics.quantiles(totals, n=20)[-1]
    assert abs(drawn_median - median) <= 0.15 * median, drawn_median
    assert abs(drawn_p95 - p95) <= 0.20 * p95, drawn_p95


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_realistic_timings_are_positive_and_bounded(resolution: str) -> None:
    median, p95 = LIVE[resolution]
    for timing in draws(PROFILES["realistic"], {"resolution": resolution}, 3, 500):
        assert timing.queued > 0 and timing.handling > 0 and timing.archiving > 0
        assert median / 2 - 1e-9 <= timing.total <= 2 * p95 + 1e-9


def test_realistic_resolutions_are_ordered() -> None:
    medians = [
        statistics.median(t.total for t in draws(PROFILES["realistic"], {"resolution": r}, 1, 500))
        for r in RESOLUTIONS
    ]
    assert medians == sorted(medians)
    assert medians[0] < medians[1] < medians[2]


@pytest.mark.parametrize("name", ["realistic", "fast"])
def test_same_seed_same_draws(name: str) -> None:
    params = {"resolution": "2K"}
    first = draws(PROFILES[name], params, seed=11, n=50)
    assert draws(PROFILES[name], params, seed=11, n=50) == first
    assert draws(PROFILES[name], params, seed=12, n=50) != first


def test_fixed_profile_returns_its_timing() -> None:
    timing = Timing(queued=1.0, handling=10.0, archiving=2.0)
    profile = Profile("fixed", fixed=timing)
    for params in ({"resolution": "1K"}, {"resolution": "4K"}, {}):
        assert profile.draw(nbp(), params, MockRandom(3)) == timing
    assert timing.total == 13.0


def test_timing_total_is_the_sum_of_its_parts() -> None:
    assert Timing(0.5, 1.25, 2.0).total == 3.75
    assert Timing().total == 0.0


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_live_latency_of_nano_banana_pro(resolution: str) -> None:
    assert nbp().live_latency({"resolution": resolution}) == LIVE[resolution]


@pytest.mark.parametrize("params", [{}, {"resolution": "8K"}, {"resolution": None}])
def test_unknown_latency_falls_back(params: dict[str, Any]) -> None:
    fallback = nbp().live_latency(params)
    assert fallback == (20.0, 40.0)
    assert fallback not in LIVE.values()


# --- adding a model is data -------------------------------------------------------------


def spec_with_a_second_model() -> Spec:
    """The project's document with one more model schema, and no code changed."""
    document: dict[str, Any] = copy.deepcopy(dict(spec().document))
    schemas = document["components"]["schemas"]
    schemas["ClipMakerTaskRequest"] = {
        "type": "object",
        "required": ["model", "input"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string", "enum": ["Clip-Maker@turbo", "Clip-Maker"]},
            "input": {"$ref": "#/components/schemas/ClipMakerInput"},
            "callback": {"$ref": "#/components/schemas/Callback"},
            "route": {"type": "string", "enum": ["", "default", "turbo"]},
        },
        "x-source": "assumed",
    }
    schemas["ClipMakerInput"] = {
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": False,
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "maxLength": 500},
            "duration": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            "aspect_ratio": {"type": "string", "enum": ["16:9", "9:16"], "default": "16:9"},
            "resolution": {"type": "string", "enum": ["720p"], "default": "720p"},
        },
        "x-model": {"name": "Clip-Maker", "kind": "video", "output-type": "video"},
        "x-output-sizes": {
            "sizes": {"16:9": {"720p": [1280, 720]}, "9:16": {"720p": [720, 1280]}},
        },
        "x-source": "assumed",
    }
    request = schemas["CreateTaskRequest"]
    request["oneOf"].append({"$ref": "#/components/schemas/ClipMakerTaskRequest"})
    for spelling in ("Clip-Maker", "Clip-Maker@turbo"):
        request["discriminator"]["mapping"][spelling] = "#/components/schemas/ClipMakerTaskRequest"
    return Spec(document)


def test_a_model_added_to_the_spec_joins_the_catalogue_without_code() -> None:
    extended = Catalog(spec_with_a_second_model())
    assert extended.names() == ["Clip-Maker", NBP]
    clip = extended.get("Clip-Maker")
    assert clip is not None
    assert clip.request_schema == "ClipMakerTaskRequest"
    assert clip.input_schema == "ClipMakerInput"
    assert set(clip.spellings) == {"Clip-Maker", "Clip-Maker@turbo"}
    assert clip.routes == ("default", "turbo")
    assert clip.output_type == "video"
    assert dict(clip.defaults) == {"duration": 5, "aspect_ratio": "16:9", "resolution": "720p"}
    assert clip.output_size({"aspect_ratio": "9:16", "resolution": "720p"}) == (720, 1280)
    # Nano-Banana-Pro is read exactly as before.
    assert extended.get(NBP) == nbp()


def test_the_added_models_requests_validate_against_its_schema() -> None:
    extended = spec_with_a_second_model()
    good = {"model": "Clip-Maker", "input": {"prompt": "a banana dancing", "duration": 3}}
    assert extended.validate_component("ClipMakerTaskRequest", good) == []
    assert extended.validate_component("CreateTaskRequest", good) == []
    problems = extended.validate_component(
        "ClipMakerInput", {"prompt": "x", "duration": 60}, at="input"
    )
    assert problems == ["input.duration: must be at most 10"]


def test_the_added_model_without_latency_data_uses_the_fallback() -> None:
    clip = Catalog(spec_with_a_second_model()).get("Clip-Maker")
    assert clip is not None
    assert clip.live_latency({"resolution": "720p"}) == (20.0, 40.0)
    rng = MockRandom(5)
    totals = [PROFILES["realistic"].draw(clip, {}, rng).total for _ in range(500)]
    assert 20.0 * 0.85 <= statistics.median(totals) <= 20.0 * 1.15


def test_extending_a_copy_leaves_the_project_catalogue_alone() -> None:
    Catalog(spec_with_a_second_model())
    assert catalog().names() == [NBP]
    assert len(spec().schema("CreateTaskRequest")["oneOf"]) == 1
