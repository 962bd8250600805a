"""The task lifecycle as a HiAPI user sees it, in-process and over a real uvicorn server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from mock_server.catalog import Profile, Timing, catalog
from mock_server.config import OUTPUT_TTL, KeyPolicy, KeyState
from mock_server.errors import NotFound

from ..conftest import (
    KEY,
    OTHER_KEY,
    PAGE_EXAMPLE,
    REFERENCE_EXAMPLE,
    Fake,
    auth,
    eventually,
    fixed_config,
)

MakeFake = Callable[..., Fake]


def body(**params: Any) -> dict[str, Any]:
    return {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana", **params}}


def download(fake: Fake, task: dict[str, Any]) -> Image.Image:
    url = task["output"][0]["url"]
    response = fake.client.get(url)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


# -- the model page's two examples, end to end ----------------------------------------------------


@pytest.mark.parametrize("example", [PAGE_EXAMPLE, REFERENCE_EXAMPLE], ids=["product", "reference"])
def test_model_page_examples_reach_success_with_the_right_image(
    fake: Fake, example: dict[str, Any]
) -> None:
    response = fake.create(example)
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["code"] == 200 and envelope["message"] == "success"
    assert envelope["data"]["taskId"].startswith("tk-hiapi-")
    task_id = envelope["data"]["taskId"]

    fake.clock.advance(13)
    task = fake.task(task_id)
    assert task["status"] == "success"
    image = download(fake, task)
    expected = catalog().get("Nano-Banana-Pro")
    assert expected is not None
    assert image.format == "PNG"
    assert image.size == expected.output_size(example["input"])


# -- statuses, order and timestamps -------------------------------------------------------------


def test_statuses_follow_the_documented_order_with_timestamps(fake: Fake) -> None:
    start = int(fake.clock.now())
    task_id = fake.task_id()
    seen = []
    for step in (0, 0.999, 0.001, 9.999, 0.001, 1.999, 0.001, 1000):
        fake.clock.advance(step)
        task = fake.task(task_id)
        seen.append(task["status"])
        assert task["created"] == start
        if task["status"] in ("success", "fail"):
            assert task["completed"] == start + 13
        else:
            assert task["completed"] == 0
            assert "output" not in task and "error" not in task
    assert seen == [
        "queued",
        "queued",
        "handling",
        "handling",
        "archiving",
        "archiving",
        "success",
        "success",
    ]
    output = task["output"]
    assert len(output) == 1
    assert output[0]["type"] == "image"
    assert output[0]["expireAt"] == task["completed"] + 604800


def test_failed_task_carries_the_error_and_no_output(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(failure_rate=1.0))
    task_id = fake.task_id()
    fake.clock.advance(11)
    task = fake.task(task_id)
    assert task["status"] == "fail"
    assert task["error"] == {"code": "TASK_FAILED", "message": "upstream rejected the prompt"}
    assert "output" not in task
    assert task["completed"] == task["created"] + 11


def test_failure_rate_fails_about_that_share_of_tasks(asgi_fake: Fake) -> None:
    asgi_fake.backend.config.failure_rate = 0.3
    ids = [asgi_fake.task_id() for _ in range(200)]
    asgi_fake.clock.advance(60)
    failed = sum(asgi_fake.task(i)["status"] == "fail" for i in ids)
    assert 35 <= failed <= 85


def test_instant_profile_is_terminal_at_creation(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(profile="instant"))
    task = fake.task(fake.task_id())
    assert task["status"] == "success"
    assert task["completed"] == task["created"]


def test_fast_profile_finishes_well_under_a_second(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(profile="fast"))
    ids = [fake.task_id() for _ in range(20)]
    fake.clock.advance(0.5)
    assert {fake.task(i)["status"] for i in ids} == {"success"}


def test_realistic_profile_takes_live_like_time(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(profile="realistic", rate_limit=False))
    accept = threading.Thread(target=lambda: fake.task_id(body(resolution="4K")))
    accept.start()
    # realistic creates take 0.2 s of the fake's clock to answer
    eventually(lambda: fake.clock.pending() == 1)
    fake.clock.advance(0.2)
    accept.join(10)
    (task,) = fake.client.get("/v1/tasks", headers=auth()).json()["data"]["tasks"]
    fake.clock.advance(20)
    assert fake.task(task["taskId"])["status"] != "success"  # 4K never takes under 30 s
    fake.clock.advance(200)
    assert fake.task(task["taskId"])["status"] == "success"


# -- inputs: every enum value and default --------------------------------------------------------


SIZES = catalog().get("Nano-Banana-Pro").sizes  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["png", "jpg"])
@pytest.mark.parametrize("resolution", ["1K", "2K", "4K"])
@pytest.mark.parametrize("ratio", list(SIZES))
def test_every_ratio_resolution_and_format_downloads_at_its_exact_size(
    asgi_fake: Fake, ratio: str, resolution: str, fmt: str
) -> None:
    task_id = asgi_fake.task_id(body(aspect_ratio=ratio, resolution=resolution, output_format=fmt))
    asgi_fake.clock.advance(13)
    task = asgi_fake.task(task_id)
    assert task["output"][0]["url"].endswith(f"/0.{fmt}")
    image = download(asgi_fake, task)
    assert image.size == SIZES[ratio][resolution]
    assert image.format == ("PNG" if fmt == "png" else "JPEG")


def test_images_download_over_a_real_server_too(make_fake: MakeFake) -> None:
    fake = make_fake()
    ids = {
        (ratio, fmt): fake.task_id(body(aspect_ratio=ratio, resolution="2K", output_format=fmt))
        for ratio, fmt in [("16:9", "png"), ("9:16", "jpg"), ("21:9", "jpg")]
    }
    fake.clock.advance(13)
    for (ratio, fmt), task_id in ids.items():
        image = download(fake, fake.task(task_id))
        assert image.size == SIZES[ratio]["2K"]
        assert image.format == ("PNG" if fmt == "png" else "JPEG")


def test_defaults_are_1k_png_and_square_without_a_reference(fake: Fake) -> None:
    task_id = fake.task_id({"model": "Nano-Banana-Pro", "input": {"prompt": "defaults"}})
    fake.clock.advance(13)
    task = fake.task(task_id)
    assert task["output"][0]["url"].endswith(".png")
    image = download(fake, task)
    assert (image.format, image.size) == ("PNG", (1024, 1024))


def test_auto_ratio_follows_a_readable_reference_image(fake: Fake) -> None:
    wide = fake.task_id(body(aspect_ratio="21:9"))
    fake.clock.advance(13)
    reference = fake.task(wide)["output"][0]["url"]
    follow = fake.task_id(body(aspect_ratio="auto", image_input=[reference]))

    buffer = io.BytesIO()
    Image.new("RGB", (300, 400)).save(buffer, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    portrait = fake.task_id(body(image_input=[data_url]))
    unreadable = fake.task_id(body(image_input=["https://example.com/reference.png"]))
    fake.clock.advance(13)
    assert download(fake, fake.task(follow)).size == SIZES["21:9"]["1K"]
    assert download(fake, fake.task(portrait)).size == SIZES["3:4"]["1K"]
    assert download(fake, fake.task(unreadable)).size == SIZES["1:1"]["1K"]


def test_images_show_their_prompt_and_differ_between_tasks(asgi_fake: Fake) -> None:
    first = asgi_fake.task_id(body())
    second = asgi_fake.task_id({"model": "Nano-Banana-Pro", "input": {"prompt": "a cherry"}})
    asgi_fake.clock.advance(13)
    one = asgi_fake.client.get(asgi_fake.task(first)["output"][0]["url"]).content
    two = asgi_fake.client.get(asgi_fake.task(second)["output"][0]["url"]).content
    assert one != two


# -- routes and model spellings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "route", "wire_model", "wire_route"),
    [
        ("Nano-Banana-Pro", None, "Nano-Banana-Pro", None),
        ("Nano-Banana-Pro", "", "Nano-Banana-Pro", None),
        ("Nano-Banana-Pro", "default", "Nano-Banana-Pro@default", "default"),
        ("Nano-Banana-Pro@default", None, "Nano-Banana-Pro@default", "default"),
    ],
)
def test_route_spellings_echo_as_documented(
    fake: Fake, model: str, route: str | None, wire_model: str, wire_route: str | None
) -> None:
    request: dict[str, Any] = {"model": model, "input": {"prompt": "x"}}
    if route is not None:
        request["route"] = route
    task = fake.task(fake.task_id(request))
    assert task["model"] == wire_model
    assert task.get("route") == wire_route


# -- identity, isolation, listing ------------------------------------------------------------------


def test_another_keys_task_is_a_404_like_an_unknown_id(fake: Fake) -> None:
    task_id = fake.task_id()
    theirs = fake.get(task_id, OTHER_KEY)
    unknown = fake.get("tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR", OTHER_KEY)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()
    listing = fake.client.get("/v1/tasks", headers=auth(OTHER_KEY)).json()["data"]
    assert listing["total"] == 0 and listing["tasks"] == []


def test_list_pages_newest_first(fake: Fake) -> None:
    ids = []
    for _ in range(25):
        ids.append(fake.task_id())
        fake.clock.advance(1)
    fake.task_id(key=OTHER_KEY)
    newest_first = list(reversed(ids))

    def page(query: str) -> dict[str, Any]:
        response = fake.client.get(f"/v1/tasks{query}", headers=auth())
        assert response.status_code == 200
        data: dict[str, Any] = response.json()["data"]
        return data

    first, second, third = page("?page=1&size=10"), page("?page=2&size=10"), page("?page=3&size=10")
    assert [t["taskId"] for t in first["tasks"] + second["tasks"] + third["tasks"]] == newest_first
    assert (third["page"], third["size"], third["total"], len(third["tasks"])) == (3, 10, 25, 5)
    assert page("?page=4&size=10")["tasks"] == []
    default = page("")
    assert (default["page"], default["size"], len(default["tasks"])) == (1, 20, 20)


@pytest.mark.parametrize(
    ("query", "page", "size"),
    [
        ("?size=0", 1, 20),
        ("?size=101", 1, 20),
        ("?size=-5", 1, 20),
        ("?size=abc", 1, 20),
        ("?size=100", 1, 100),
        ("?size=1", 1, 1),
        ("?page=0", 1, 20),
        ("?page=-1", 1, 20),
        ("?page=x&size=2.5", 1, 20),
        ("?page=2&size=5", 2, 5),
        ("?page=99999999999999999999999", 1, 20),
    ],
)
def test_out_of_range_paging_falls_back_silently(
    asgi_fake: Fake, query: str, page: int, size: int
) -> None:
    response = asgi_fake.client.get(f"/v1/tasks{query}", headers=auth())
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["page"], data["size"]) == (page, size)


# -- idempotency ---------------------------------------------------------------------------------


def test_idempotency_replay_in_flight_and_mismatch(make_fake: MakeFake) -> None:
    slow_accept = Profile("fixed", accept=5.0, fixed=Timing(1.0, 10.0, 2.0))
    fake = make_fake(fixed_config(profile=slow_accept))
    key = {"Idempotency-Key": "order-42"}
    first: dict[str, Any] = {}

    def create_first() -> None:
        response = fake.create(PAGE_EXAMPLE, headers=key)
        first.update(status=response.status_code, json=response.json(), headers=response.headers)

    sender = threading.Thread(target=create_first)
    sender.start()
    eventually(lambda: fake.clock.pending() == 1)  # the first create is in flight

    busy = fake.create(PAGE_EXAMPLE, headers=key)
    assert busy.status_code == 409
    assert busy.json()["error_code"] == "IDEMPOTENCY_KEY_PROCESSING"
    assert busy.headers["Retry-After"] == "5"

    fake.clock.advance(5)
    sender.join(10)
    assert first["status"] == 200
    assert "Idempotent-Replay" not in first["headers"]
    task_id = first["json"]["data"]["taskId"]

    replay = fake.create(PAGE_EXAMPLE, headers=key)
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replay"] == "true"
    assert replay.json()["data"]["taskId"] == task_id

    mismatch = fake.create(REFERENCE_EXAMPLE, headers=key)
    assert mismatch.status_code == 422
    assert mismatch.json()["error_code"] == "IDEMPOTENCY_KEY_MISMATCH"
    listing = fake.client.get("/v1/tasks", headers=auth()).json()["data"]
    assert listing["total"] == 1


def test_idempotency_key_is_per_api_key_and_expires_after_24_hours(fake: Fake) -> None:
    key = {"Idempotency-Key": "same"}
    mine = fake.create(PAGE_EXAMPLE, headers=key).json()["data"]["taskId"]
    theirs = fake.create(PAGE_EXAMPLE, OTHER_KEY, headers=key).json()["data"]["taskId"]
    assert mine != theirs
    fake.clock.advance(86_399)
    assert fake.create(PAGE_EXAMPLE, headers=key).json()["data"]["taskId"] == mine
    fake.clock.advance(1)
    fresh = fake.create(PAGE_EXAMPLE, headers=key)
    assert "Idempotent-Replay" not in fresh.headers
    assert fresh.json()["data"]["taskId"] != mine


def test_same_body_in_another_key_order_is_a_replay(asgi_fake: Fake) -> None:
    key = {"Idempotency-Key": "k"}
    params: dict[str, Any] = dict(PAGE_EXAMPLE["input"])
    reordered = {"input": dict(reversed(params.items())), "model": "Nano-Banana-Pro"}
    first = asgi_fake.create(PAGE_EXAMPLE, headers=key)
    again = asgi_fake.create(reordered, headers=key)
    assert again.headers["Idempotent-Replay"] == "true"
    assert again.json()["data"] == first.json()["data"]


def test_a_refused_create_does_not_hold_its_idempotency_key(asgi_fake: Fake) -> None:
    key = {"Idempotency-Key": "retry-me"}
    bad = asgi_fake.create(body(resolution="8K"), headers=key)
    assert bad.status_code == 400
    good = asgi_fake.create(body(), headers=key)
    assert good.status_code == 200 and "Idempotent-Replay" not in good.headers


# -- expiry --------------------------------------------------------------------------------------


def test_output_file_is_gone_after_expire_at(fake: Fake) -> None:
    task_id = fake.task_id()
    fake.clock.advance(13)
    task = fake.task(task_id)
    url = task["output"][0]["url"]
    expire_at = task["output"][0]["expireAt"]
    assert fake.client.get(url).status_code == 200
    fake.clock.set(expire_at - 1)
    assert fake.client.get(url).status_code == 200
    fake.clock.set(expire_at)
    gone = fake.client.get(url)
    assert gone.status_code == 404
    assert gone.json()["code"] == 404
    assert expire_at - task["completed"] == OUTPUT_TTL


def test_output_file_is_404_before_success_and_for_wrong_names(fake: Fake) -> None:
    task_id = fake.task_id()
    url = f"/files/{task_id}/0.png"
    assert fake.client.get(url).status_code == 404
    fake.clock.advance(13)
    assert fake.client.get(url).status_code == 200
    for wrong in ("0.jpg", "1.png", "..%2F..%2Fetc%2Fpasswd", "0.png.bak"):
        assert fake.client.get(f"/files/{task_id}/{wrong}").status_code == 404
    assert fake.client.get("/files/tk-hiapi-nothing/0.png").status_code == 404


# -- keys -----------------------------------------------------------------------------------------


def test_configured_keys_revoked_forbidden_and_out_of_balance(make_fake: MakeFake) -> None:
    keys = {
        KEY: KeyPolicy(balance=1),
        "sk-revoked": KeyPolicy(state=KeyState.REVOKED),
        "sk-forbidden": KeyPolicy(state=KeyState.FORBIDDEN),
    }
    fake = make_fake(fixed_config(keys=keys))
    assert fake.create(PAGE_EXAMPLE).status_code == 200
    broke = fake.create(PAGE_EXAMPLE)
    assert (broke.status_code, broke.json()["error_code"]) == (402, "INSUFFICIENT_BALANCE")
    assert fake.client.get("/v1/tasks", headers=auth()).json()["data"]["total"] == 1
    revoked = fake.create(PAGE_EXAMPLE, "sk-revoked")
    assert (revoked.status_code, revoked.json()["error_code"]) == (401, "UNAUTHORIZED")
    assert "revoked" in revoked.json()["message"]
    forbidden = fake.client.get("/v1/tasks", headers=auth("sk-forbidden"))
    assert (forbidden.status_code, forbidden.json()["error_code"]) == (403, "FORBIDDEN")
    unknown = fake.create(PAGE_EXAMPLE, "sk-unknown")
    assert unknown.status_code == 401


# -- determinism ----------------------------------------------------------------------------------


def _run(fake: Fake) -> list[Any]:
    ids = [fake.task_id(body(prompt=f"p{i}")) for i in range(12)]
    fake.clock.advance(0.25)
    middle = [fake.task(i)["status"] for i in ids]
    fake.clock.advance(600)
    final = [fake.task(i) for i in ids]
    images = [fake.client.get(t["output"][0]["url"]).content for t in final if "output" in t]
    for task in final:  # each server has its own port; the rest of the URL must match
        for output in task.get("output", []):
            output["url"] = output["url"].split("/files/", 1)[1]
    return [ids, middle, final, images]


def test_one_seed_reproduces_ids_outcomes_timings_and_images(make_fake: MakeFake) -> None:
    first = _run(make_fake(fixed_config(seed=99, profile="fast", failure_rate=0.3)))
    again = _run(make_fake(fixed_config(seed=99, profile="fast", failure_rate=0.3)))
    other = _run(make_fake(fixed_config(seed=100, profile="fast", failure_rate=0.3)))
    assert first == again
    assert first[0] != other[0]
    assert first[1:3] != other[1:3]
    assert {t["status"] for t in first[2]} == {"success", "fail"}
    assert len(set(first[1])) > 1  # mid-way, tasks stand in different statuses
    assert len(set(first[0])) == 12


# -- polling: a task's JSON rendered once per status ----------------------------------------------


def test_a_task_polled_again_unchanged_is_answered_with_the_bytes_rendered_before(
    fake: Fake,
) -> None:
    task_id = fake.task_id()
    first = fake.backend.task_json(KEY, task_id)
    again = fake.backend.task_json(KEY, task_id)
    assert again is first  # not rendered again
    assert json.loads(first) == fake.backend.task(KEY, task_id)
    assert fake.get(task_id).content == b'{"code":200,"message":"success","data":' + first + b"}"


def test_a_new_status_or_a_finish_by_the_control_plane_is_rendered_anew(fake: Fake) -> None:
    task_id = fake.task_id()
    statuses = []
    for _ in range(3):
        statuses.append(json.loads(fake.backend.task_json(KEY, task_id))["status"])
        fake.clock.advance(1)
    assert statuses == ["queued", "handling", "handling"]
    fake.backend.finish_task(task_id, "fail", "CONTENT_POLICY", "refused on purpose")
    ended = json.loads(fake.backend.task_json(KEY, task_id))
    assert ended["status"] == "fail" and ended["error"]["code"] == "CONTENT_POLICY"
    assert ended == fake.task(task_id)


def test_polling_more_tasks_than_are_kept_stays_correct(fake: Fake) -> None:
    backend = fake.backend

    async def create(count: int) -> list[str]:
        made = [await backend.create(KEY, body(), None, "http://fake/") for _ in range(count)]
        return [task_id for task_id, _ in made]

    task_ids = asyncio.run(create(5000))  # more than the 4,096 kept
    for _ in range(2):
        for task_id in task_ids:
            assert json.loads(backend.task_json(KEY, task_id))["taskId"] == task_id
        fake.clock.advance(13)
    assert {json.loads(backend.task_json(KEY, t))["status"] for t in task_ids} == {"success"}
    with pytest.raises(NotFound):
        backend.task_json(OTHER_KEY, task_ids[0])  # another key's task
