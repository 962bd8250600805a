"""The control API under `/_mock/`, seen as a test suite uses it: stage rules and watch the HiAPI
API change, drive the clock, read the journal and the delivery log, wait, finish, reset."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
import yaml

from mock_server.clock import DEFAULT_START
from mock_server.control import CONTROL_SPEC
from mock_server.receiver import CallbackReceiver
from mock_server.spec import Spec

from ..conformance import callback_problems
from ..conftest import (
    KEY,
    OTHER_KEY,
    PAGE_EXAMPLE,
    Fake,
    auth,
    build_fake,
    eventually,
    fixed_config,
)

MakeFake = Callable[..., Fake]
START = DEFAULT_START
END = 13.0  # the fixed timing: every task ends 13 s after it was created (fail: 11 s)
FAIL_END = 11.0
#: Every blocking wait in these tests is bounded by this many wall seconds.
BOUND = 10.0
CONTROL = Spec(yaml.safe_load(CONTROL_SPEC.read_text(encoding="utf-8")))


# -- helpers --------------------------------------------------------------------------------------


def control_problems(response: httpx2.Response) -> list[str]:
    """What in one control answer disagrees with `control.yaml` (empty when it conforms)."""
    request = response.request
    body: Any = None
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
    found = CONTROL.check_response(
        request.method, request.url.path, response.status_code, response.headers, body
    )
    if isinstance(body, dict) and body.get("code") != response.status_code:
        found.append(f"envelope code {body.get('code')} != HTTP {response.status_code}")
    return found


def call(
    fake: Fake,
    method: str,
    path: str,
    body: Any = None,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """One control call; its answer is in HiAPI's envelope, whatever the status."""
    response = fake.client.request(method, path, json=body, params=params, headers=headers)
    envelope = response.json()
    assert envelope["code"] == response.status_code, response.text
    assert isinstance(envelope["message"], str)
    if response.status_code != 200:
        assert envelope["data"] is None, response.text
        assert isinstance(envelope["error_code"], str), response.text
    return response


def data(response: httpx2.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def refused(response: httpx2.Response, status: int, error_code: str, *fragments: str) -> str:
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["error_code"] == error_code, response.text
    for fragment in fragments:
        assert fragment in envelope["message"], envelope["message"]
    message: str = envelope["message"]
    return message


def add_rule(fake: Fake, rule: dict[str, Any]) -> dict[str, Any]:
    stored: dict[str, Any] = data(call(fake, "POST", "/_mock/rules", rule))
    return stored


def rules(fake: Fake) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = data(call(fake, "GET", "/_mock/rules"))["rules"]
    return listed


def advance(fake: Fake, seconds: float) -> dict[str, Any]:
    clock: dict[str, Any] = data(call(fake, "POST", "/_mock/clock/advance", {"seconds": seconds}))
    return clock


def journal(fake: Fake, **params: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = data(call(fake, "GET", "/_mock/journal", params=params))[
        "requests"
    ]
    return entries


def deliveries(fake: Fake, task: str | None = None) -> list[dict[str, Any]]:
    params = {"task": task} if task else None
    found: list[dict[str, Any]] = data(call(fake, "GET", "/_mock/deliveries", params=params))[
        "deliveries"
    ]
    return found


def wait(fake: Fake, **body: Any) -> httpx2.Response:
    return call(fake, "POST", "/_mock/wait", body)


def finish(fake: Fake, task_id: str, body: Any = None) -> httpx2.Response:
    return call(fake, "POST", f"/_mock/tasks/{task_id}/finish", body)


def status(fake: Fake, task_id: str) -> str:
    value: str = fake.task(task_id)["status"]
    return value


def prompted(prompt: str, callback: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "Nano-Banana-Pro", "input": {"prompt": prompt}}
    if callback is not None:
        body["callback"] = {"url": callback}
    return body


def http_fault(status: int, retry_after: int | None = None, **fields: Any) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "http", "status": status, **fields}
    if retry_after is not None:
        action["retry_after"] = retry_after
    return action


def idle(fake: Fake) -> None:
    fake.backend.callbacks.wait_idle(BOUND)


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """A real receiver; every body it got is checked against the spec's `callbacks`."""
    with CallbackReceiver() as running:
        yield running
        running.release()
        for delivery in running.received:
            assert callback_problems(delivery.body) == [], delivery.body[:200]


@pytest.fixture
def server_fake() -> Iterator[Fake]:
    """A fake behind a real uvicorn server only: for faults that only a socket can show."""
    fake = build_fake(fixed_config(), "uvicorn")
    yield fake
    fake.close()


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    # Every call made in here carries a bounded timeout, so shutting the pool down is bounded.
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


# -- every endpoint conforms to control.yaml ------------------------------------------------------

Answer = tuple[httpx2.Response, int]


def _spec_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    response = fake.client.get("/_mock/openapi.yaml")
    assert response.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(response.text) == CONTROL.document
    return [(response, 200)]


def _reset_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    return [(call(fake, "POST", "/_mock/reset"), 200)]


def _clock_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    return [
        (call(fake, "GET", "/_mock/clock"), 200),
        (call(fake, "POST", "/_mock/clock/advance", {"seconds": 1.5}), 200),
        (call(fake, "POST", "/_mock/clock/advance", {"duration": "2m"}), 200),
        (call(fake, "POST", "/_mock/clock/advance", {"to": START + 600}), 200),
        (call(fake, "POST", "/_mock/clock/advance", {"to": START}), 400),
        (call(fake, "POST", "/_mock/clock/advance", {"seconds": -1}), 400),
        (call(fake, "POST", "/_mock/clock/speed", {"speed": 2}), 200),
        (call(fake, "POST", "/_mock/clock/speed", {"speed": -2}), 400),
        (call(fake, "POST", "/_mock/clock/freeze"), 200),
    ]


def _add_rule_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    rule = {"match": {"method": "GET"}, "action": http_fault(503, 1), "times": 2}
    return [
        (call(fake, "POST", "/_mock/rules", rule), 200),
        (call(fake, "POST", "/_mock/rules", {"action": {"type": "outcome"}}), 200),
        (call(fake, "POST", "/_mock/rules", {"action": {"type": "teleport"}}), 400),
    ]


def _list_rules_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    add_rule(fake, {"match": {"prompt": "x"}, "action": {"type": "timing", "handling": 3}})
    add_rule(fake, {"action": {"type": "callback", "kind": "drop"}, "times": 1})
    return [(call(fake, "GET", "/_mock/rules"), 200)]


def _delete_rules_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    add_rule(fake, {"action": {"type": "delay", "seconds": 0.01}})
    return [
        (call(fake, "DELETE", "/_mock/rules/rule-1"), 200),
        (call(fake, "DELETE", "/_mock/rules/rule-1"), 404),
        (call(fake, "DELETE", "/_mock/rules"), 200),
    ]


def _journal_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    fake.task_id()
    fake.client.get("/v1/tasks")  # a 401, journaled too
    return [
        (call(fake, "GET", "/_mock/journal"), 200),
        (call(fake, "GET", "/_mock/journal", params={"limit": 1, "method": "post"}), 200),
        (call(fake, "GET", "/_mock/journal", params={"limit": 0}), 400),
        (call(fake, "GET", "/_mock/journal", params={"limit": "many"}), 400),
    ]


def _deliveries_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    fake.task_id(prompted("plain", receiver.url_for()))
    fake.task_id(prompted("[mock:callback=drop]", receiver.url_for()))
    advance(fake, END)
    idle(fake)
    answer = call(fake, "GET", "/_mock/deliveries")
    assert len(answer.json()["data"]["deliveries"]) == 2
    return [(answer, 200)]


def _wait_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    with_callback = fake.task_id(prompted("x", receiver.url_for()))
    plain = fake.task_id()
    return [
        (wait(fake, task_id=plain, status="queued"), 200),
        (wait(fake, task_id=plain, timeout=0.05), 408),
        (wait(fake, task_id=plain, status="done"), 400),
        (wait(fake, task_id=plain, callback="attempted"), 400),
        (wait(fake, status="queued"), 400),
        (wait(fake, task_id="tk-hiapi-nope"), 404),
        (wait(fake, task_id=with_callback, callback="delivered", timeout=0.05), 408),
    ]


def _finish_answers(fake: Fake, receiver: CallbackReceiver) -> list[Answer]:
    task_id = fake.task_id()
    return [
        (finish(fake, task_id, {"status": "fail", "error": {"code": "X"}}), 200),
        (finish(fake, task_id), 400),
        (finish(fake, "tk-hiapi-nope"), 404),
    ]


ENDPOINTS: dict[str, Callable[[Fake, CallbackReceiver], list[Answer]]] = {
    "controlSpec": _spec_answers,
    "reset": _reset_answers,
    "clock": _clock_answers,
    "addRule": _add_rule_answers,
    "listRules": _list_rules_answers,
    "deleteRules": _delete_rules_answers,
    "readJournal": _journal_answers,
    "readDeliveries": _deliveries_answers,
    "wait": _wait_answers,
    "finishTask": _finish_answers,
}


@pytest.mark.parametrize("operation", ENDPOINTS)
def test_every_control_answer_conforms_to_control_yaml(
    fake: Fake, receiver: CallbackReceiver, operation: str
) -> None:
    answers = ENDPOINTS[operation](fake, receiver)
    assert [r.status_code for r, _ in answers] == [expected for _, expected in answers]
    problems = [p for response, _ in answers for p in control_problems(response)]
    assert problems == []


def test_every_operation_in_control_yaml_is_served(asgi_fake: Fake) -> None:
    for template, item in CONTROL.document["paths"].items():
        for method in item:
            path = template.replace("{ruleId}", "rule-404").replace("{taskId}", "tk-hiapi-404")
            response = asgi_fake.client.request(method.upper(), path)
            assert response.status_code not in (405, 500), (method, template, response.text)
            if response.status_code == 404:
                assert "no such endpoint" not in response.json()["message"], (method, template)


# -- the control token ---------------------------------------------------------------------------

CONTROL_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/_mock/openapi.yaml", None),
    ("POST", "/_mock/reset", None),
    ("GET", "/_mock/clock", None),
    ("POST", "/_mock/clock/advance", {"seconds": 1}),
    ("POST", "/_mock/clock/freeze", None),
    ("POST", "/_mock/clock/speed", {"speed": 0}),
    ("GET", "/_mock/rules", None),
    ("POST", "/_mock/rules", {"action": {"type": "outcome"}}),
    ("DELETE", "/_mock/rules", None),
    ("DELETE", "/_mock/rules/rule-1", None),
    ("GET", "/_mock/journal", None),
    ("GET", "/_mock/deliveries", None),
    ("POST", "/_mock/wait", {"task_id": "tk-hiapi-x"}),
    ("POST", "/_mock/tasks/tk-hiapi-x/finish", None),
]


def test_with_a_control_token_every_call_needs_it(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(control_token="t0k"))
    problems = []
    for method, path, body in CONTROL_CALLS:
        for headers in ({}, {"X-Mock-Token": "wrong"}, {"Authorization": "Bearer t0k0"}):
            response = call(fake, method, path, body, headers=headers)
            refused(response, 401, "UNAUTHORIZED", "X-Mock-Token")
            problems += control_problems(response)
    assert fake.clock.now() == START  # nothing was done
    assert fake.backend.rules.list() == []
    assert problems == []  # every 401 is declared in control.yaml


def test_the_control_token_is_accepted_as_header_or_bearer(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(control_token="t0k"))
    assert call(fake, "GET", "/_mock/clock").status_code == 401
    by_header = call(fake, "GET", "/_mock/clock", headers={"X-Mock-Token": "t0k"})
    assert data(by_header)["now"] == START
    by_bearer = call(
        fake,
        "POST",
        "/_mock/clock/advance",
        {"seconds": 5},
        headers={"Authorization": "Bearer t0k"},
    )
    assert data(by_bearer)["now"] == START + 5


def test_the_control_token_does_not_touch_the_hiapi_api(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(control_token="t0k"))
    task_id = fake.task_id()  # Authorization: Bearer sk-..., no X-Mock-Token
    assert status(fake, task_id) == "queued"
    assert fake.client.get("/v1/tasks", headers=auth(OTHER_KEY)).status_code == 200
    assert fake.client.get("/v1/tasks").status_code == 401  # the API's own key check is unchanged


# -- rules: list, delete, refuse -------------------------------------------------------------------


def test_a_posted_rule_is_answered_as_stored(fake: Fake) -> None:
    rule = {
        "match": {"method": "POST", "path": "/v1/tasks", "headers": {"X-Test-Case": "abc"}},
        "action": {"type": "http", "status": 429, "retry_after": 7},
        "times": 3,
    }
    assert add_rule(fake, rule) == {
        "id": "rule-1",
        "match": rule["match"],
        "action": {
            "type": "http",
            "status": 429,
            "error_code": None,
            "message": None,
            "retry_after": 7,
        },
        "times": 3,
        "used": 0,
    }
    assert rules(fake)[0]["id"] == "rule-1"


def test_rules_are_listed_in_order_deleted_one_by_one_and_all_at_once(fake: Fake) -> None:
    first = add_rule(fake, {"action": {"type": "outcome", "status": "success"}})
    second = add_rule(fake, {"match": {"method": "GET"}, "action": http_fault(503, 1)})
    third = add_rule(fake, {"action": {"type": "timing", "queued": 2}})
    assert [r["id"] for r in rules(fake)] == [first["id"], second["id"], third["id"]]

    assert data(call(fake, "DELETE", f"/_mock/rules/{second['id']}")) == {"deleted": second["id"]}
    assert [r["id"] for r in rules(fake)] == [first["id"], third["id"]]
    assert fake.client.get("/v1/tasks", headers=auth()).status_code == 200  # the 503 is gone

    refused(call(fake, "DELETE", f"/_mock/rules/{second['id']}"), 404, "NOT_FOUND", "rule-2")
    assert data(call(fake, "DELETE", "/_mock/rules")) == {"rules": []}
    assert rules(fake) == []
    assert status(fake, fake.task_id()) == "queued"  # the timing rule is gone too


def test_an_unknown_rule_id_is_404(fake: Fake) -> None:
    refused(call(fake, "DELETE", "/_mock/rules/rule-77"), 404, "NOT_FOUND", "rule-77")


BAD_RULES: list[tuple[str, Any, str]] = [
    ("unknown match field", {"match": {"modle": "x"}, "action": http_fault(503, 1)}, "modle"),
    ("status 418", {"action": http_fault(418)}, "action.status"),
    ("unknown action", {"action": {"type": "explode"}}, "action.type"),
    ("negative seconds", {"action": {"type": "delay", "seconds": -1}}, "action.seconds"),
    ("times 0", {"action": http_fault(503, 1), "times": 0}, "times"),
    ("times as text", {"action": http_fault(503, 1), "times": "2"}, "times"),
    ("bad regex", {"match": {"prompt_regex": "(["}, "action": http_fault(503, 1)}, "prompt_regex"),
    ("bad kind", {"action": {"type": "callback", "kind": "lose"}}, "action.kind"),
    ("no action", {"match": {}}, "action"),
    ("not an object", [1, 2], "body"),
]


@pytest.mark.parametrize(("name", "rule", "named"), BAD_RULES, ids=[c[0] for c in BAD_RULES])
def test_a_bad_rule_is_400_naming_the_field(fake: Fake, name: str, rule: Any, named: str) -> None:
    response = call(fake, "POST", "/_mock/rules", rule)
    refused(response, 400, "INVALID_REQUEST", named)
    assert rules(fake) == []


def test_a_rule_body_that_is_not_json_is_400(fake: Fake) -> None:
    response = fake.client.post(
        "/_mock/rules", content=b"{match", headers={"Content-Type": "application/json"}
    )
    refused(response, 400, "INVALID_REQUEST", "body: is not valid JSON")


# -- rules seen through the HiAPI API: task actions -----------------------------------------------


def test_an_outcome_rule_fails_the_task_with_its_code_and_message(fake: Fake) -> None:
    add_rule(
        fake,
        {"action": {"type": "outcome", "status": "fail", "code": "CONTENT_POLICY",
                    "message": "no bananas today"}},
    )  # fmt: skip
    task_id = fake.task_id()
    advance(fake, FAIL_END - 1)
    assert status(fake, task_id) == "handling"
    advance(fake, 1)
    task = fake.task(task_id)
    assert task["status"] == "fail"
    assert task["error"] == {"code": "CONTENT_POLICY", "message": "no bananas today"}
    assert "output" not in task


def test_an_outcome_rule_of_success_overrides_the_failure_rate(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(failure_rate=1.0))
    doomed = fake.task_id()
    add_rule(
        fake, {"match": {"prompt": "[lucky]"}, "action": {"type": "outcome", "status": "success"}}
    )
    lucky = fake.task_id(prompted("a [lucky] banana"))
    advance(fake, END)
    assert status(fake, doomed) == "fail"
    task = fake.task(lucky)
    assert task["status"] == "success" and len(task["output"]) == 1


def test_a_timing_rule_sets_when_each_status_begins(fake: Fake) -> None:
    add_rule(fake, {"action": {"type": "timing", "queued": 5, "handling": 20, "archiving": 3}})
    task_id = fake.task_id()
    seen = []
    for step in (4, 1, 19, 1, 2, 1):  # just before and exactly at 5, 25 and 28 s
        advance(fake, step)
        seen.append(status(fake, task_id))
    assert seen == ["queued", "handling", "handling", "archiving", "archiving", "success"]
    task = fake.task(task_id)
    assert (task["created"], task["completed"]) == (int(START), int(START) + 28)


def test_a_callback_rule_makes_the_callback_misbehave(
    fake: Fake, receiver: CallbackReceiver
) -> None:
    add_rule(fake, {"action": {"type": "callback", "kind": "duplicate", "copies": 2}, "times": 1})
    doubled = fake.task_id(prompted("one", receiver.url_for()))
    single = fake.task_id(prompted("two", receiver.url_for()))
    advance(fake, END)
    receiver.wait_for(3, BOUND)
    idle(fake)
    assert len(receiver.for_task(doubled)) == 2
    assert len(receiver.for_task(single)) == 1
    assert {d["fault"] for d in deliveries(fake, doubled)} == {"duplicate"}


def test_task_actions_of_different_kinds_from_different_rules_combine(
    fake: Fake, receiver: CallbackReceiver
) -> None:
    add_rule(fake, {"action": {"type": "outcome", "status": "fail", "code": "A"}})
    add_rule(fake, {"action": {"type": "outcome", "status": "fail", "code": "B"}})
    add_rule(fake, {"action": {"type": "timing", "queued": 0, "handling": 3}})
    add_rule(fake, {"action": {"type": "callback", "kind": "drop"}})
    task_id = fake.task_id(prompted("x", receiver.url_for()))
    advance(fake, 3)
    assert fake.task(task_id)["error"]["code"] == "A"
    idle(fake)
    assert [d["fault"] for d in deliveries(fake, task_id)] == ["drop"]
    assert [r["used"] for r in rules(fake)] == [1, 0, 1, 1]


# -- rules seen through the HiAPI API: request actions --------------------------------------------

# Each status staged on an operation that declares it in openapi.yaml.
HTTP_FAULTS: list[tuple[int, str, str, int | None, str]] = [
    (400, "POST", "/v1/tasks", None, "INVALID_REQUEST"),
    (401, "POST", "/v1/tasks", None, "UNAUTHORIZED"),
    (402, "POST", "/v1/tasks", None, "INSUFFICIENT_BALANCE"),
    (403, "GET", "/v1/tasks", None, "FORBIDDEN"),
    (404, "GET", "/v1/tasks/tk-hiapi-01KB0000000000000000000000", None, "NOT_FOUND"),
    (429, "GET", "/v1/tasks", 7, "RATE_LIMITED"),
    (500, "GET", "/v1/tasks/tk-hiapi-01KB0000000000000000000000", None, "INTERNAL_ERROR"),
    (503, "POST", "/v1/tasks", 30, "MODEL_UNAVAILABLE"),
]


@pytest.mark.parametrize(
    ("code", "method", "path", "retry_after", "error_code"),
    HTTP_FAULTS,
    ids=[str(c[0]) for c in HTTP_FAULTS],
)
def test_an_http_fault_is_answered_in_the_envelope(
    fake: Fake, code: int, method: str, path: str, retry_after: int | None, error_code: str
) -> None:
    add_rule(
        fake, {"match": {"method": method, "path": path}, "action": http_fault(code, retry_after)}
    )
    body = PAGE_EXAMPLE if method == "POST" else None
    response = fake.client.request(method, path, json=body, headers=auth())
    assert response.status_code == code, response.text
    envelope = response.json()
    assert envelope["code"] == code and envelope["data"] is None
    assert envelope["error_code"] == error_code
    assert str(code) in envelope["message"]
    if retry_after is not None:
        assert response.headers["Retry-After"] == str(retry_after)
    else:
        assert "Retry-After" not in response.headers
    assert response.headers["X-RateLimit-Limit"] == "60"  # faults pass the rate limiter too
    if method == "POST":
        assert fake.backend.store.count(KEY) == 0  # refused before a task was made


def test_an_http_fault_carries_its_own_error_code_and_message(fake: Fake) -> None:
    add_rule(
        fake,
        {"action": http_fault(503, 3, error_code="STORAGE_UNAVAILABLE", message="bucket on fire")},
    )
    response = fake.client.get("/v1/tasks", headers=auth())
    assert response.status_code == 503
    assert response.json() == {
        "code": 503,
        "message": "bucket on fire",
        "data": None,
        "error_code": "STORAGE_UNAVAILABLE",
    }
    assert response.headers["Retry-After"] == "3"


@pytest.mark.parametrize("how", ["rule 429", "rule 503", "directive 503"])
def test_a_staged_429_or_503_without_retry_after_still_sends_retry_after(
    fake: Fake, how: str
) -> None:
    # openapi.yaml makes Retry-After required on every 429 and 503; the conformance hook of
    # the client refuses an answer without it.
    kind, status_code = how.split()
    if kind == "rule":
        add_rule(fake, {"action": http_fault(int(status_code))})
        response = fake.client.get("/v1/tasks", headers=auth())
    else:
        response = fake.create(prompted(f"[mock:http={status_code}]"))
    assert response.status_code == int(status_code)
    assert response.headers["Retry-After"].isdigit()


def test_times_three_gives_exactly_three_429s_then_normal_answers(fake: Fake) -> None:
    add_rule(
        fake,
        {
            "match": {"method": "POST", "path": "/v1/tasks"},
            "action": http_fault(429, 7),
            "times": 3,
        },
    )
    answers = [fake.create(PAGE_EXAMPLE) for _ in range(5)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200, 200]
    assert {a.headers.get("Retry-After") for a in answers[:3]} == {"7"}
    (rule,) = rules(fake)
    assert (rule["used"], rule["times"]) == (3, 3)


def test_a_delay_rule_answers_normally_but_late(fake: Fake) -> None:
    add_rule(fake, {"match": {"method": "GET", "path": "/v1/tasks"},
                    "action": {"type": "delay", "seconds": 0.3}, "times": 1})  # fmt: skip
    started = time.perf_counter()
    response = fake.client.get("/v1/tasks", headers=auth())
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.json()["data"]["total"] == 0
    assert elapsed >= 0.29  # loosely: asyncio may wake a hair early
    assert rules(fake)[0]["used"] == 1


def test_a_hang_times_the_client_out_and_the_server_keeps_serving(server_fake: Fake) -> None:
    fake = server_fake
    add_rule(fake, {"match": {"method": "GET", "path": "/v1/tasks"},
                    "action": {"type": "hang", "seconds": 30}, "times": 1})  # fmt: skip
    impatient = httpx2.Client(base_url=str(fake.client.base_url), timeout=0.3)
    with impatient, pytest.raises(httpx2.ReadTimeout):
        impatient.get("/v1/tasks", headers=auth())
    assert fake.client.get("/v1/tasks", headers=auth()).status_code == 200
    assert status(fake, fake.task_id()) == "queued"


def test_a_dropped_connection_is_a_transport_error_and_the_server_keeps_serving(
    server_fake: Fake,
) -> None:
    fake = server_fake
    add_rule(fake, {"match": {"method": "GET", "path": "/v1/tasks"},
                    "action": {"type": "drop_connection"}, "times": 1})  # fmt: skip
    with httpx2.Client(base_url=str(fake.client.base_url), timeout=BOUND) as client:
        with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
            client.get("/v1/tasks", headers=auth())
        assert client.get("/v1/tasks", headers=auth()).status_code == 200
    assert status(fake, fake.task_id()) == "queued"


def test_a_dropped_connection_is_not_journaled_as_a_success(server_fake: Fake) -> None:
    fake = server_fake
    add_rule(fake, {"match": {"method": "GET"}, "action": {"type": "drop_connection"}, "times": 1})
    client = httpx2.Client(base_url=str(fake.client.base_url), timeout=BOUND)
    with client, pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        client.get("/v1/tasks", headers=auth())
    eventually(lambda: len(journal(fake)) == 1, BOUND)
    (entry,) = journal(fake)
    # Nothing was answered; a 200 here tells whoever reads the journal the opposite.
    assert entry["status"] != 200


# -- matchers over HTTP ---------------------------------------------------------------------------


def test_model_matcher_including_the_model_at_route_spelling(fake: Fake) -> None:
    add_rule(fake, {"match": {"model": "Other-Model"}, "action": {"type": "outcome"}})
    add_rule(fake, {"match": {"model": "Nano-Banana-Pro"}, "action": {"type": "outcome",
                    "code": "MODEL_RULE"}})  # fmt: skip
    at_route = fake.task_id({**prompted("x"), "model": "Nano-Banana-Pro@default"})
    plain = fake.task_id(prompted("y"))
    advance(fake, END)
    assert fake.task(at_route)["error"]["code"] == "MODEL_RULE"
    assert fake.task(plain)["error"]["code"] == "MODEL_RULE"
    assert [r["used"] for r in rules(fake)] == [0, 2]


def test_api_key_matcher_touches_only_that_keys_requests(fake: Fake) -> None:
    add_rule(fake, {"match": {"api_key": KEY}, "action": http_fault(503, 1)})
    assert fake.client.get("/v1/tasks", headers=auth(KEY)).status_code == 503
    assert fake.create(PAGE_EXAMPLE, key=KEY).status_code == 503
    assert fake.client.get("/v1/tasks", headers=auth(OTHER_KEY)).status_code == 200
    assert fake.create(PAGE_EXAMPLE, key=OTHER_KEY).status_code == 200


def test_prompt_matcher_for_a_task_action_and_for_a_request_action(fake: Fake) -> None:
    add_rule(fake, {"match": {"prompt": "[flaky]"}, "action": {"type": "outcome"}})
    add_rule(fake, {"match": {"prompt_regex": r"^busy\b"}, "action": http_fault(503, 2)})
    flaky = fake.task_id(prompted("a [flaky] banana"))
    fine = fake.task_id(prompted("a banana"))
    busy = fake.create(prompted("busy day"))
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert fake.create(prompted("not busy")).status_code == 200
    advance(fake, END)
    assert (status(fake, flaky), status(fake, fine)) == ("fail", "success")


def test_header_matcher(fake: Fake) -> None:
    add_rule(fake, {"match": {"headers": {"X-Test-Case": "abc"}}, "action": http_fault(503, 1)})
    add_rule(fake, {"match": {"headers": {"x-test-case": "doomed"}}, "action": {"type": "outcome"}})
    headers = {**auth(), "x-test-CASE": "case-abc-1"}
    assert fake.client.get("/v1/tasks", headers=headers).status_code == 503
    assert fake.client.get("/v1/tasks", headers={**auth(), "X-Test-Case": "xyz"}).status_code == 200
    assert fake.client.get("/v1/tasks", headers=auth()).status_code == 200
    doomed = fake.create(PAGE_EXAMPLE, headers={"X-Test-Case": "doomed"})
    plain = fake.task_id()
    advance(fake, END)
    assert status(fake, doomed.json()["data"]["taskId"]) == "fail"
    assert status(fake, plain) == "success"


def test_method_and_path_glob_matcher(fake: Fake) -> None:
    task_id = fake.task_id()
    add_rule(
        fake, {"match": {"method": "get", "path": "/v1/tasks/*"}, "action": http_fault(503, 4)}
    )
    assert fake.get(task_id).status_code == 503
    assert fake.create(PAGE_EXAMPLE).status_code == 200
    assert fake.client.get("/v1/tasks", headers=auth()).status_code == 200
    assert fake.get("tk-hiapi-anything").status_code == 503


# -- prompt directives over HTTP -----------------------------------------------------------------


def test_fail_directive(fake: Fake) -> None:
    task_id = fake.task_id(prompted("banana [mock:fail=CONTENT_POLICY:not today]"))
    advance(fake, END)
    task = fake.task(task_id)
    assert task["status"] == "fail"
    assert task["error"] == {"code": "CONTENT_POLICY", "message": "not today"}


def test_delay_directive_ends_the_task_exactly_then(fake: Fake) -> None:
    task_id = fake.task_id(prompted("banana [mock:delay=90s]"))
    advance(fake, 89)
    assert status(fake, task_id) != "success"
    advance(fake, 1)
    task = fake.task(task_id)
    assert task["status"] == "success" and task["completed"] == int(START) + 90


def test_callback_drop_directive(fake: Fake, receiver: CallbackReceiver) -> None:
    dropped = fake.task_id(prompted("banana [mock:callback=drop]", receiver.url_for()))
    kept = fake.task_id(prompted("banana", receiver.url_for()))
    advance(fake, END)
    (arrived,) = receiver.wait_for(1, BOUND)
    idle(fake)
    assert arrived.json()["taskId"] == kept
    assert len(receiver.received) == 1
    (entry,) = deliveries(fake, dropped)
    assert (entry["fault"], entry["sent_at"], entry["ok"]) == ("drop", None, False)


def test_http_directive_answers_that_status_with_retry_after(fake: Fake) -> None:
    response = fake.create(prompted("banana [mock:http=429:7]"))
    refused(response, 429, "RATE_LIMITED")
    assert response.headers["Retry-After"] == "7"
    assert fake.client.get("/v1/tasks", headers=auth()).json()["data"]["total"] == 0


def test_a_bad_directive_is_400_naming_input_prompt(fake: Fake) -> None:
    response = fake.create(prompted("banana [mock:delay=soon]"))
    refused(response, 400, "INVALID_REQUEST", "input.prompt: [mock:delay=soon]")


# -- the clock -----------------------------------------------------------------------------------


def test_the_clock_starts_frozen_at_2026(fake: Fake) -> None:
    assert data(call(fake, "GET", "/_mock/clock")) == {
        "now": START,
        "iso": "2026-01-01T00:00:00Z",
        "speed": 0,
        "frozen": True,
    }


def test_advance_by_seconds_duration_and_to(fake: Fake) -> None:
    assert advance(fake, 90)["now"] == START + 90
    moved = data(call(fake, "POST", "/_mock/clock/advance", {"duration": "2m"}))
    assert moved["now"] == START + 210
    moved = data(call(fake, "POST", "/_mock/clock/advance", {"duration": "500ms"}))
    assert moved["now"] == START + 210.5
    moved = data(call(fake, "POST", "/_mock/clock/advance", {"to": START + 3600}))
    assert moved == {
        "now": START + 3600,
        "iso": "2026-01-01T01:00:00Z",
        "speed": 0,
        "frozen": True,
        "settled": True,
    }
    assert fake.clock.now() == START + 3600


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"to": START + 10}, "to: the clock cannot go backwards"),
        ({"seconds": -1}, "seconds:"),
        ({"duration": "soon"}, "duration:"),
        ({"duration": 90}, "duration:"),
        ({"seconds": "90"}, "seconds:"),
        ({}, "seconds:"),
    ],
)
def test_the_clock_never_goes_backwards_and_bad_advances_are_400(
    fake: Fake, body: dict[str, Any], named: str
) -> None:
    advance(fake, 60)
    refused(call(fake, "POST", "/_mock/clock/advance", body), 400, "INVALID_REQUEST", named)
    assert data(call(fake, "GET", "/_mock/clock"))["now"] == START + 60


def test_speed_runs_the_clock_and_freeze_stops_it(fake: Fake) -> None:
    running = data(call(fake, "POST", "/_mock/clock/speed", {"speed": 1000}))
    assert (running["speed"], running["frozen"]) == (1000, False)
    eventually(lambda: data(call(fake, "GET", "/_mock/clock"))["now"] > START + 1, BOUND)
    frozen = data(call(fake, "POST", "/_mock/clock/freeze"))
    assert (frozen["speed"], frozen["frozen"]) == (0, True)
    assert data(call(fake, "GET", "/_mock/clock"))["now"] == frozen["now"] > START
    refused(
        call(fake, "POST", "/_mock/clock/speed", {"speed": -1}), 400, "INVALID_REQUEST", "speed"
    )
    refused(call(fake, "POST", "/_mock/clock/speed", {}), 400, "INVALID_REQUEST", "speed")


def test_a_running_clock_moves_tasks_along(fake: Fake) -> None:
    task_id = fake.task_id()
    data(call(fake, "POST", "/_mock/clock/speed", {"speed": 1000}))
    eventually(lambda: status(fake, task_id) == "success", BOUND)
    data(call(fake, "POST", "/_mock/clock/freeze"))


def test_advancing_moves_every_task_through_its_statuses_in_order(fake: Fake) -> None:
    add_rule(fake, {"match": {"prompt": "[A]"}, "action": {"type": "timing", "queued": 1,
                    "handling": 1, "archiving": 1}})  # fmt: skip
    add_rule(fake, {"match": {"prompt": "[B]"}, "action": {"type": "timing", "queued": 2,
                    "handling": 4, "archiving": 2}})  # fmt: skip
    ids = {
        "A": fake.task_id(prompted("[A]")),
        "B": fake.task_id(prompted("[B]")),
        "C": fake.task_id(prompted("C")),
        "D": fake.task_id(prompted("D [mock:fail]")),
    }
    expected = {
        0: "queued queued queued queued",
        1: "handling queued handling handling",
        2: "archiving handling handling handling",
        3: "success handling handling handling",
        6: "success archiving handling handling",
        8: "success success handling handling",
        11: "success success archiving fail",
        13: "success success success fail",
        100: "success success success fail",
    }
    now = 0
    for at, statuses in expected.items():
        advance(fake, at - now)
        now = at
        assert " ".join(status(fake, ids[name]) for name in "ABCD") == statuses, at


def test_one_big_advance_delivers_due_callbacks_in_completion_order(
    fake: Fake, receiver: CallbackReceiver
) -> None:
    slow = fake.task_id(prompted("slow [mock:delay=30s]", receiver.url_for("/slow")))
    quick = fake.task_id(prompted("quick [mock:delay=10s]", receiver.url_for("/quick")))
    middle = fake.task_id(prompted("middle [mock:delay=20s]", receiver.url_for("/middle")))
    advance(fake, 3600)
    arrived = receiver.wait_for(3, BOUND)
    assert [r.json()["taskId"] for r in arrived] == [quick, middle, slow]
    idle(fake)
    log = deliveries(fake)
    assert [d["task_id"] for d in log] == [quick, middle, slow]
    assert [d["scheduled_at"] for d in log] == [START + 10, START + 20, START + 30]


# -- the journal ---------------------------------------------------------------------------------


def test_the_journal_shows_each_request_with_masked_key_and_body(fake: Fake) -> None:
    task_id = fake.task_id()
    advance(fake, 5)
    fake.get(task_id)
    fake.client.get("/v1/tasks", headers=auth(OTHER_KEY))
    fake.client.get("/v1/tasks")  # no key: 401

    create, read, listed, anonymous = journal(fake)
    assert (create["method"], create["path"], create["status"]) == ("POST", "/v1/tasks", 200)
    assert create["task_id"] == task_id
    assert json.loads(create["body"]) == PAGE_EXAMPLE
    assert create["api_key"] == "sk-t…lice"
    assert create["headers"]["authorization"] == "Bearer sk-t…lice"
    assert KEY not in json.dumps(journal(fake))
    assert create["at"] == START
    assert (read["method"], read["path"], read["task_id"]) == (
        "GET",
        f"/v1/tasks/{task_id}",
        task_id,
    )
    assert read["at"] == START + 5
    assert (listed["api_key"], listed["task_id"], listed["body"]) == ("sk-t…-bob", None, "")
    assert (anonymous["status"], anonymous["api_key"]) == (401, None)
    assert [e["seq"] for e in (create, read, listed, anonymous)] == [1, 2, 3, 4]


def test_the_journal_filters(fake: Fake) -> None:
    first = fake.task_id()
    second = fake.task_id(key=OTHER_KEY)
    fake.get(first)
    fake.get(second, key=OTHER_KEY)
    fake.client.get("/v1/tasks", headers=auth())

    def paths(**params: Any) -> list[tuple[str, str]]:
        return [(e["method"], e["path"]) for e in journal(fake, **params)]

    assert paths(path="/v1/tasks") == [("POST", "/v1/tasks"), ("POST", "/v1/tasks"),
                                       ("GET", "/v1/tasks")]  # fmt: skip
    assert paths(task=first) == [("POST", "/v1/tasks"), ("GET", f"/v1/tasks/{first}")]
    assert paths(key=OTHER_KEY) == [("POST", "/v1/tasks"), ("GET", f"/v1/tasks/{second}")]
    assert paths(method="get", key=KEY) == [("GET", f"/v1/tasks/{first}"), ("GET", "/v1/tasks")]
    assert [e["seq"] for e in journal(fake, limit=2)] == [4, 5]
    assert paths(path="/v1/tasks", method="POST", limit=1) == [("POST", "/v1/tasks")]
    assert journal(fake, task="tk-hiapi-none") == []


def test_control_calls_are_not_journaled(fake: Fake) -> None:
    for method, path, body in CONTROL_CALLS:
        if path != "/_mock/reset":
            fake.client.request(method, path, json=body)
    assert journal(fake) == []
    fake.task_id()
    assert [e["path"] for e in journal(fake)] == ["/v1/tasks"]


def test_rate_limit_refusals_and_staged_faults_are_journaled_with_their_status(
    make_fake: MakeFake,
) -> None:
    fake = make_fake(fixed_config(rate_limit=True, requests_per_minute=2))
    add_rule(fake, {"match": {"api_key": OTHER_KEY}, "action": http_fault(503, 9), "times": 1})
    for _ in range(3):
        fake.client.get("/v1/tasks", headers=auth())
    fake.client.get("/v1/tasks", headers=auth(OTHER_KEY))
    assert [e["status"] for e in journal(fake, key=KEY)] == [200, 200, 429]
    assert [e["status"] for e in journal(fake, key=OTHER_KEY)] == [503]


# -- the delivery log -----------------------------------------------------------------------------


def test_deliveries_show_each_attempt_and_each_drop(fake: Fake, receiver: CallbackReceiver) -> None:
    receiver.fail_next(1, status=500)
    retried = fake.task_id(prompted("retried", receiver.url_for("/a")))
    dropped = fake.task_id(prompted("[mock:callback=drop]", receiver.url_for("/b")))
    advance(fake, END)
    receiver.wait_for(1, BOUND)
    idle(fake)
    advance(fake, 60)
    receiver.wait_for(2, BOUND)
    idle(fake)

    first, second = deliveries(fake, retried)
    assert (first["attempt"], first["status"], first["ok"]) == (1, 500, False)
    assert (second["attempt"], second["status"], second["ok"]) == (2, 200, True)
    assert first["url"] == receiver.url_for("/a") and first["copy"] == 1
    assert (first["scheduled_at"], first["sent_at"]) == (START + END, START + END)
    assert second["sent_at"] == START + END + 60
    assert first["headers"]["Content-Type"] == "application/json"
    (drop,) = deliveries(fake, dropped)
    assert drop["fault"] == "drop" and drop["sent_at"] is None and drop["status"] is None
    assert drop["error"] and drop["url"] == receiver.url_for("/b")
    assert len(deliveries(fake)) == 3
    assert deliveries(fake, "tk-hiapi-none") == []


# -- waiting -------------------------------------------------------------------------------------


def test_wait_returns_at_once_when_the_status_was_already_reached(fake: Fake) -> None:
    task_id = fake.task_id()
    advance(fake, END)
    for awaited in ("queued", "handling", "archiving", "success", "terminal"):
        answer = data(wait(fake, task_id=task_id, status=awaited, timeout=BOUND))
        assert answer["reached"] is True and answer["clock"]["now"] == START + END
    assert data(wait(fake, task_id=task_id, timeout=BOUND))["reached"] is True  # terminal


def test_wait_times_out_with_408_on_a_frozen_clock(fake: Fake) -> None:
    task_id = fake.task_id()
    response = wait(fake, task_id=task_id, status="success", timeout=0.2)
    refused(response, 408, "WAIT_TIMEOUT")
    assert status(fake, task_id) == "queued"


def test_wait_returns_when_another_thread_advances_the_clock(
    fake: Fake, background: ThreadPoolExecutor
) -> None:
    task_id = fake.task_id()
    waiting: Future[httpx2.Response] = background.submit(
        wait, fake, task_id=task_id, status="archiving", timeout=BOUND
    )
    eventually(lambda: fake.clock.pending() > 0, BOUND)
    assert not waiting.done()
    advance(fake, 11)
    answer = data(waiting.result(BOUND))
    assert answer["reached"] is True and answer["clock"]["now"] == START + 11


def test_waiting_for_a_status_the_task_never_passes_is_408_once_it_ended(
    fake: Fake, background: ThreadPoolExecutor
) -> None:
    task_id = fake.task_id(prompted("[mock:fail]"))
    waiting: Future[httpx2.Response] = background.submit(
        wait, fake, task_id=task_id, status="archiving", timeout=BOUND * 3
    )
    eventually(lambda: fake.clock.pending() > 0, BOUND)
    advance(fake, END)
    refused(waiting.result(BOUND), 408, "WAIT_TIMEOUT")  # well before its 30 s timeout
    assert status(fake, task_id) == "fail"
    refused(wait(fake, task_id=task_id, status="archiving", timeout=BOUND), 408, "WAIT_TIMEOUT")
    assert data(wait(fake, task_id=task_id, status="fail", timeout=BOUND))["reached"] is True


def test_wait_for_a_callback_delivered_or_attempted(fake: Fake, receiver: CallbackReceiver) -> None:
    delivered = fake.task_id(prompted("ok", receiver.url_for("/ok")))
    advance(fake, END)
    assert data(wait(fake, task_id=delivered, callback="delivered", timeout=BOUND))["reached"]
    assert len(receiver.for_task(delivered)) == 1

    receiver.fail_next(1, status=503)
    refused_once = fake.task_id(prompted("refused", receiver.url_for("/no")))
    advance(fake, END)
    assert data(wait(fake, task_id=refused_once, callback="attempted", timeout=BOUND))["reached"]
    response = wait(fake, task_id=refused_once, callback="delivered", timeout=0.2)
    refused(response, 408, "WAIT_TIMEOUT")  # the retry is 60 s away on a frozen clock
    advance(fake, 60)
    assert data(wait(fake, task_id=refused_once, callback="delivered", timeout=BOUND))["reached"]


def test_wait_for_a_callback_before_it_is_due(
    fake: Fake, receiver: CallbackReceiver, background: ThreadPoolExecutor
) -> None:
    task_id = fake.task_id(prompted("later", receiver.url_for()))
    waiting: Future[httpx2.Response] = background.submit(
        wait, fake, task_id=task_id, callback="delivered", timeout=BOUND
    )
    advance(fake, END)
    assert data(waiting.result(BOUND))["reached"] is True
    assert len(receiver.wait_for(1, BOUND)) == 1


@pytest.mark.parametrize("awaited", [{"status": "success"}, {"callback": "delivered"}])
def test_wait_for_an_unknown_task_is_404(fake: Fake, awaited: dict[str, str]) -> None:
    refused(wait(fake, task_id="tk-hiapi-nope", timeout=0.2, **awaited), 404, "NOT_FOUND")


def test_wait_for_the_callback_of_a_task_without_one_is_400(fake: Fake) -> None:
    response = wait(fake, task_id=fake.task_id(), callback="delivered", timeout=0.2)
    refused(response, 400, "INVALID_REQUEST", "callback:")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "task_id"),
        ({"task_id": 7}, "task_id"),
        ({"status": "done"}, "status"),
        ({"status": 3}, "status"),
        ({"callback": "sent"}, "callback"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_a_bad_wait_is_400_naming_the_field(fake: Fake, body: dict[str, Any], named: str) -> None:
    task_id = fake.task_id(prompted("x", "http://127.0.0.1:9/cb"))
    full = {"task_id": task_id, "timeout": 0.2, **body}
    if body == {}:
        del full["task_id"]
    refused(wait(fake, **full), 400, "INVALID_REQUEST", named)


# -- finishing a task ----------------------------------------------------------------------------


def test_finish_makes_a_queued_task_succeed_now_with_a_downloadable_output(fake: Fake) -> None:
    task_id = fake.task_id()
    shown = data(finish(fake, task_id))
    assert shown == fake.task(task_id)
    assert (shown["status"], shown["completed"]) == ("success", int(START))
    url = httpx2.URL(shown["output"][0]["url"])
    image = fake.client.get(url.path)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_finish_with_fail_carries_the_code_and_message(fake: Fake) -> None:
    task_id = fake.task_id()
    advance(fake, 5)  # handling
    body = {"status": "fail", "error": {"code": "CONTENT_POLICY", "message": "no bananas"}}
    shown = data(finish(fake, task_id, body))
    assert shown["status"] == "fail" and shown["completed"] == int(START) + 5
    assert shown["error"] == {"code": "CONTENT_POLICY", "message": "no bananas"}
    assert fake.task(task_id) == shown
    advance(fake, END)
    assert fake.task(task_id) == shown  # stays as finished


def test_finish_with_fail_and_no_error_uses_the_default_failure(fake: Fake) -> None:
    shown = data(finish(fake, fake.task_id(), {"status": "fail"}))
    assert shown["error"] == {"code": "TASK_FAILED", "message": "upstream rejected the prompt"}


def test_finishing_an_ended_task_is_400(fake: Fake) -> None:
    ended = fake.task_id()
    forced = fake.task_id()
    data(finish(fake, forced))
    refused(finish(fake, forced, {"status": "fail"}), 400, "INVALID_REQUEST", "already ended")
    advance(fake, END)
    refused(finish(fake, ended), 400, "INVALID_REQUEST", "already ended in success")
    assert (status(fake, forced), status(fake, ended)) == ("success", "success")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"status": "done"}, "status"),
        ({"status": 1}, "status"),
        ({"error": "boom"}, "error"),
        ({"status": "fail", "error": {"code": 5}}, "error.code"),
    ],
)
def test_a_bad_finish_is_400(fake: Fake, body: dict[str, Any], named: str) -> None:
    task_id = fake.task_id()
    refused(finish(fake, task_id, body), 400, "INVALID_REQUEST", named)
    assert status(fake, task_id) == "queued"


def test_finishing_an_unknown_task_is_404(fake: Fake) -> None:
    refused(finish(fake, "tk-hiapi-nope"), 404, "NOT_FOUND")


def test_a_finished_task_calls_back_once_at_the_forced_end_only(
    fake: Fake, receiver: CallbackReceiver
) -> None:
    task_id = fake.task_id(prompted("x", receiver.url_for()))
    advance(fake, 2)
    data(finish(fake, task_id, {"status": "fail", "error": {"code": "FORCED"}}))
    (arrived,) = receiver.wait_for(1, BOUND)
    assert arrived.json() == fake.task(task_id)
    assert arrived.json()["error"]["code"] == "FORCED"
    advance(fake, END * 10)  # well past the end it was planned to have
    idle(fake)
    assert len(receiver.received) == 1
    (entry,) = deliveries(fake, task_id)
    assert entry["scheduled_at"] == START + 2


# -- reset ---------------------------------------------------------------------------------------


def test_reset_leaves_nothing_behind(make_fake: MakeFake, receiver: CallbackReceiver) -> None:
    config = fixed_config(rate_limit=True, requests_per_minute=3)
    fake = make_fake(config)
    idempotent = {**PAGE_EXAMPLE, "input": {"prompt": "first body"}}
    old = fake.create(idempotent, headers={"Idempotency-Key": "k-1"}).json()["data"]["taskId"]
    delivered = fake.task_id(prompted("x", receiver.url_for()))
    fake.task_id(prompted("[mock:delay=50s]", receiver.url_for()))  # its callback: at 50 s
    add_rule(fake, {"action": {"type": "timing", "handling": 500}})
    advance(fake, 30)  # still the same rate-limit minute
    receiver.wait_for(1, BOUND)
    idle(fake)
    assert fake.client.get("/v1/tasks", headers=auth()).status_code == 429  # 3 used up
    assert journal(fake) and deliveries(fake) and rules(fake)

    answer = data(call(fake, "POST", "/_mock/reset"))
    assert answer == {"clock": {"now": START, "iso": "2026-01-01T00:00:00Z", "speed": 0,
                                "frozen": True}}  # fmt: skip
    assert (journal(fake), deliveries(fake), rules(fake)) == ([], [], [])

    # The minute's three requests are allowed again; the same seed makes the same ids, so the
    # old tasks are shown to be gone by the list before any new one exists.
    listed = fake.client.get("/v1/tasks", headers=auth())
    assert listed.status_code == 200 and listed.json()["data"]["total"] == 0
    fresh = make_fake(config)
    new = fake.task_id()
    assert new == fresh.task_id() == old  # same seed, same clock: the same first id
    other = fake.create({**idempotent, "input": {"prompt": "another body"}},
                        headers={"Idempotency-Key": "k-1"})  # fmt: skip
    assert other.status_code == 200 and "Idempotent-Replay" not in other.headers

    advance(fake, 60)  # a new rate-limit minute, and past the old tasks' ends
    assert status(fake, new) == "success"  # the 500 s timing rule is gone
    idle(fake)
    # Only the callback delivered before the reset ever arrived: the pending one went with it.
    assert [r.json()["taskId"] for r in receiver.received] == [delivered]
    assert fake.client.get("/v1/tasks", headers=auth()).json()["data"]["total"] == 2


def test_a_reset_fake_makes_the_same_ids_as_a_fresh_one(make_fake: MakeFake) -> None:
    used = make_fake()
    for _ in range(3):
        used.task_id()
    advance(used, 1234)
    data(call(used, "POST", "/_mock/reset"))
    fresh = make_fake()
    assert [used.task_id() for _ in range(3)] == [fresh.task_id() for _ in range(3)]
    assert add_rule(used, {"action": {"type": "outcome"}})["id"] == "rule-1"
