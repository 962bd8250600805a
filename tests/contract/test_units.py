"""The harness's parts against a scripted target (httpx.MockTransport), no server: each lifecycle
check fails on the defect it is for, and the HTTP helpers count, pace and reproduce."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from contract import CheckResult, Spend, Status, lifecycle
from contract.context import Context, Pacing, Target
from contract.facts import OUTPUT_TTL, facts
from contract.http import Http, Throttle, curl, mask_authorization

BASE = "http://127.0.0.1:1"
KEY = "sk-unit"
CREATED = 1_767_225_600
Script = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def _states(task_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A conforming life: queued, handling, archiving, success (then it stays)."""
    base = {"taskId": task_id, "model": body["model"], "created": CREATED, "completed": 0}
    done = CREATED + 20
    output = {
        "url": f"{BASE}/files/{task_id}/0.png",
        "type": "image",
        "expireAt": done + OUTPUT_TTL,
    }
    running = [{**base, "status": s} for s in ("queued", "handling", "archiving")]
    return [*running, {**base, "status": "success", "completed": done, "output": [output]}]


class Scripted:
    """Answers creates, reads (one scripted state per read) and downloads."""

    def __init__(self, script: Script = _states) -> None:
        self.script = script
        self.lives: dict[str, list[dict[str, Any]]] = {}
        self.files: dict[str, tuple[tuple[int, int], str]] = {}
        self.ids = itertools.count()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/tasks":
            body = json.loads(request.content)
            task_id = f"tk-hiapi-01{next(self.ids):024d}"
            self.lives[task_id] = self.script(task_id, body)
            params = body["input"]
            size = facts().size(params["aspect_ratio"], params["resolution"])
            self.files[task_id] = size, "PNG" if params["output_format"] == "png" else "JPEG"
            return httpx.Response(
                200, json={"code": 200, "message": "success", "data": {"taskId": task_id}}
            )
        if path.startswith("/v1/tasks/"):
            life = self.lives[path.rsplit("/", 1)[1]]
            state = life.pop(0) if len(life) > 1 else life[0]
            return httpx.Response(200, json={"code": 200, "message": "success", "data": state})
        if path.startswith("/files/"):
            size, kind = self.files[path.split("/")[2]]
            buffer = io.BytesIO()
            Image.new("RGB", size).save(buffer, kind)
            return httpx.Response(200, content=buffer.getvalue())
        return httpx.Response(404, json={"code": 404, "message": "no", "data": None})


def _context(target: Scripted, results: list[CheckResult]) -> Context:
    http = Http(
        BASE, [KEY], throttle=Throttle(), spend=Spend(), transport=httpx.MockTransport(target)
    )
    where = Target(BASE, (KEY,))
    pacing = Pacing(poll_interval=0.001, poll_deadline=2.0, callback_wait=0.1, retry_wait=0.1)
    return Context(where, http, facts(), seed=0, max_tasks=None, pacing=pacing, emit=results.append)


def _lifecycle(script: Script = _states) -> dict[str, Status]:
    results: list[CheckResult] = []
    lifecycle.run(_context(Scripted(script), results))
    return {r.label: r.status for r in results}


def _broken(change: Callable[[list[dict[str, Any]]], None]) -> Script:
    def script(task_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        life = _states(task_id, body)
        change(life)
        return life

    return script


def test_a_conforming_life_passes_every_lifecycle_and_output_check() -> None:
    statuses = _lifecycle()
    assert statuses["lifecycle.status_order [lifecycle]"] is Status.PASS
    assert statuses["outputs.format [jpeg]"] is Status.PASS
    assert statuses["lifecycle.terminal_reached [fail]"] is Status.SKIP  # not hiapi-mock
    assert [label for label, s in statuses.items() if s is Status.FAIL] == []


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda life: life.insert(1, {**life[0], "status": "archiving"}), "lifecycle.status_order"),
        (lambda life: life.append({**life[1]}), "lifecycle.terminal_sticks"),
        (lambda life: life[1].update(completed=CREATED + 5), "lifecycle.completed"),
        (lambda life: life[-1]["output"][0].update(expireAt=1), "lifecycle.expire_at"),
        (lambda life: life[-1]["output"][0].update(type="video"), "outputs.type"),
        (lambda life: life[-1].update(status="fail"), "lifecycle.terminal_reached"),
    ],
    ids=["backwards", "not-sticky", "completed-early", "expire-at", "type", "wrong-end"],
)
def test_each_lifecycle_defect_fails_its_check(
    change: Callable[[list[dict[str, Any]]], None], check: str
) -> None:
    assert _lifecycle(_broken(change))[f"{check} [lifecycle]"] is Status.FAIL


def test_the_reachability_of_statuses_follows_the_documented_moves() -> None:
    contract = facts()
    assert contract.terminal == {"success", "fail"}
    assert contract.reachable("queued", "archiving") and contract.reachable("handling", "fail")
    assert not contract.reachable("archiving", "handling")
    assert not contract.reachable("success", "fail")


def test_a_429_is_waited_out_retried_and_counted() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)])
    seen: list[int] = []
    spend = Spend()
    http = Http(
        BASE,
        [KEY],
        throttle=Throttle(),
        spend=spend,
        transport=httpx.MockTransport(lambda request: next(answers)),
        on_rate_limited=lambda response: seen.append(response.status_code),
    )
    assert http.get("/v1/tasks").status_code == 200
    assert (spend.requests, spend.rate_limited, seen) == (2, 1, [429])


def test_the_throttle_spaces_requests_evenly() -> None:
    throttle = Throttle(per_minute=6000)  # one every 10 ms
    started = time.monotonic()
    for _ in range(6):
        throttle.wait()
    assert time.monotonic() - started >= 0.05
    assert Throttle().interval == 0.0


def test_curl_hides_the_keys_behind_variables() -> None:
    request = httpx.Request(
        "POST",
        f"{BASE}/v1/tasks",
        headers={"Authorization": "Bearer sk-two", "Idempotency-Key": "k-1"},
        json={"model": "x"},
    )
    command = curl(request, ["sk-one", "sk-two"])
    assert '"Authorization: Bearer $HIAPI_API_KEY_2"' in command
    assert "sk-two" not in command and "'Idempotency-Key: k-1'" in command
    assert command.endswith(f'-d \'{{"model":"x"}}\' {BASE}/v1/tasks')
    stated = mask_authorization("curl -H 'Authorization: [Filtered]' http://x")
    assert stated == 'curl -H "Authorization: Bearer $HIAPI_API_KEY" http://x'
