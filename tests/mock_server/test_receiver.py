"""The callback receiver over real HTTP: what it records, and how it misbehaves on request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from mock_server.receiver import CallbackReceiver, ReceivedCallback

pytestmark = pytest.mark.server

#: Every blocking wait in these tests is bounded by this.
BOUND = 10.0


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as receiver:
        yield receiver


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=BOUND) as client:
        yield client


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    # Requests in here carry a client timeout, so shutting the pool down is bounded too.
    with ThreadPoolExecutor(max_workers=16) as pool:
        yield pool


def post(url: str, payload: Any = None, timeout: float = BOUND) -> httpx.Response:
    """A POST on its own short-lived client, safe to run from any thread."""
    response = httpx.post(url, json=payload or {}, timeout=timeout)
    response.close()
    return response


def answered(records: list[ReceivedCallback]) -> list[int]:
    return [record.answered for record in records]


def stop_within(receiver: CallbackReceiver, timeout: float = BOUND) -> None:
    stopper = threading.Thread(target=receiver.stop, daemon=True)
    stopper.start()
    stopper.join(timeout)
    assert not stopper.is_alive(), f"stop() did not return within {timeout} s"


# -- what it records -----------------------------------------------------------------------


def test_records_method_path_query_headers_and_the_exact_bytes(
    receiver: CallbackReceiver, client: httpx.Client
) -> None:
    payload = {"taskId": "t-1", "prompt": "バナナ on marble — café ✓ 🍌"}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    before = time.time()
    response = client.post(
        receiver.url_for("/hooks/a") + "?attempt=1&x=%C3%A9",
        content=body,
        headers={"Content-Type": "application/json", "X-HiAPI-Signature": "sig"},
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    [record] = receiver.received
    assert record.method == "POST"
    assert record.path == "/hooks/a"
    assert record.query == "attempt=1&x=%C3%A9"
    assert record.headers["content-type"] == "application/json"
    assert record.headers["x-hiapi-signature"] == "sig"
    assert record.headers["content-length"] == str(len(body))
    assert record.body == body
    assert record.json() == payload
    assert before <= record.received_at <= time.time()
    assert record.answered == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_any_method_on_any_path_is_recorded(
    receiver: CallbackReceiver, client: httpx.Client, method: str
) -> None:
    response = client.request(method, receiver.url + "/deep/er/path")
    assert response.status_code == 200
    [record] = receiver.received
    assert (record.method, record.path, record.body) == (method, "/deep/er/path", b"")


def test_repeated_headers_are_joined(receiver: CallbackReceiver, client: httpx.Client) -> None:
    client.post(receiver.url_for(), headers=[("X-Tag", "a"), ("X-Tag", "b")])
    assert receiver.received[0].headers["x-tag"] == "a, b"


def test_urls_point_at_the_server(receiver: CallbackReceiver) -> None:
    assert receiver.url.startswith("http://127.0.0.1:")
    assert receiver.url_for() == receiver.url + "/callback"
    assert receiver.url_for("hooks/b") == receiver.url + "/hooks/b"


def test_keeps_arrival_order(receiver: CallbackReceiver, client: httpx.Client) -> None:
    for n in range(5):
        client.post(receiver.url_for(f"/hooks/{n % 2}"), json={"n": n})
    assert [record.json()["n"] for record in receiver.received] == [0, 1, 2, 3, 4]


def test_received_is_a_snapshot(receiver: CallbackReceiver, client: httpx.Client) -> None:
    client.post(receiver.url_for())
    snapshot = receiver.received
    snapshot.clear()
    assert len(receiver.received) == 1


def test_for_task_filters_by_task_id(receiver: CallbackReceiver, client: httpx.Client) -> None:
    url = receiver.url_for()
    client.post(url, json={"taskId": "a", "n": 1})
    client.post(url, json={"taskId": "b", "n": 2})
    client.post(url, content=b"not json")
    client.post(url, json=["taskId", "a"])
    client.post(url, json={"taskId": "a", "n": 3})
    assert [record.json()["n"] for record in receiver.for_task("a")] == [1, 3]
    assert [record.json()["n"] for record in receiver.for_task("b")] == [2]
    assert receiver.for_task("missing") == []


def test_many_concurrent_posts_are_each_recorded_once(
    receiver: CallbackReceiver, client: httpx.Client, background: ThreadPoolExecutor
) -> None:
    url = receiver.url_for()
    futures = [background.submit(client.post, url, json={"n": n}) for n in range(200)]
    assert all(future.result(BOUND).status_code == 200 for future in futures)
    records = receiver.wait_for(200)
    assert sorted(record.json()["n"] for record in records) == list(range(200))
    assert set(answered(records)) == {200}


# -- failing -------------------------------------------------------------------------------


def test_fail_next_answers_the_status_then_recovers(
    receiver: CallbackReceiver, client: httpx.Client
) -> None:
    receiver.fail_next(2, 503)
    responses = [client.post(receiver.url_for(), json={"n": n}) for n in range(3)]
    assert [response.status_code for response in responses] == [503, 503, 200]
    assert [response.json() for response in responses] == [{"ok": False}] * 2 + [{"ok": True}]
    assert answered(receiver.received) == [503, 503, 200]


def test_fail_next_defaults_to_500_and_queues_up(
    receiver: CallbackReceiver, client: httpx.Client
) -> None:
    receiver.fail_next(1)
    receiver.fail_next(1, 502)
    statuses = [client.post(receiver.url_for()).status_code for _ in range(3)]
    assert statuses == [500, 502, 200]


def test_concurrent_requests_use_each_failure_once(
    receiver: CallbackReceiver, client: httpx.Client, background: ThreadPoolExecutor
) -> None:
    receiver.fail_next(50, 503)
    url = receiver.url_for()
    futures = [background.submit(client.post, url) for _ in range(120)]
    statuses = [future.result(BOUND).status_code for future in futures]
    assert (statuses.count(503), statuses.count(200)) == (50, 70)
    assert sorted(answered(receiver.received)) == sorted(statuses)


# -- stalling ------------------------------------------------------------------------------


def test_a_stalled_request_waits_for_release_without_blocking_others(
    receiver: CallbackReceiver, client: httpx.Client, background: ThreadPoolExecutor
) -> None:
    receiver.stall_next(1)
    held: Future[httpx.Response] = background.submit(post, receiver.url_for("/a"), {"n": 1})
    [record] = receiver.wait_for(1)
    assert (record.path, record.answered) == ("/a", 0)

    second = client.post(receiver.url_for("/b"), json={"n": 2})
    assert second.status_code == 200
    assert not held.done(), "the stalled request was answered before release()"
    assert answered(receiver.received) == [0, 200]

    receiver.release()
    assert held.result(BOUND).status_code == 200
    assert answered(receiver.received) == [200, 200]


def test_stalls_are_used_before_failures(
    receiver: CallbackReceiver, client: httpx.Client, background: ThreadPoolExecutor
) -> None:
    receiver.fail_next(1, 503)
    receiver.stall_next(1)
    held = background.submit(post, receiver.url_for())
    receiver.wait_for(1)
    assert client.post(receiver.url_for()).status_code == 503
    receiver.release()
    assert held.result(BOUND).status_code == 200
    assert answered(receiver.received) == [200, 503]


def test_a_client_giving_up_on_a_stall_does_not_break_the_receiver(
    receiver: CallbackReceiver, client: httpx.Client
) -> None:
    receiver.stall_next(1)
    with pytest.raises(httpx.ReadTimeout):
        post(receiver.url_for("/gave-up"), timeout=0.2)
    assert client.post(receiver.url_for("/after")).status_code == 200

    stop_within(receiver)
    # Nobody was left to answer, so the record says so even after stop() released everything.
    assert answered(receiver.received) == [0, 200]
    with pytest.raises(httpx.ConnectError):
        post(receiver.url_for())


def test_stop_answers_held_requests_and_returns(
    receiver: CallbackReceiver, background: ThreadPoolExecutor
) -> None:
    receiver.stall_next(2)
    held = [background.submit(post, receiver.url_for()) for _ in range(2)]
    receiver.wait_for(2)
    stop_within(receiver)
    assert [future.result(BOUND).status_code for future in held] == [200, 200]


# -- waiting and resetting -----------------------------------------------------------------


def test_wait_for_returns_once_enough_arrived(
    receiver: CallbackReceiver, background: ThreadPoolExecutor
) -> None:
    sent = [background.submit(post, receiver.url_for(), {"n": n}) for n in range(3)]
    records = receiver.wait_for(3)
    assert sorted(record.json()["n"] for record in records) == [0, 1, 2]
    assert all(future.result(BOUND).status_code == 200 for future in sent)


def test_wait_for_fails_naming_how_many_came(
    receiver: CallbackReceiver, client: httpx.Client
) -> None:
    client.post(receiver.url_for())
    with pytest.raises(AssertionError, match=r"expected 2 request\(s\) within 0.2 s, 1 arrived"):
        receiver.wait_for(2, timeout=0.2)


def test_reset_forgets_records_and_switches_and_releases_held(
    receiver: CallbackReceiver, client: httpx.Client, background: ThreadPoolExecutor
) -> None:
    client.post(receiver.url_for())
    receiver.stall_next(2)
    held = background.submit(post, receiver.url_for())
    receiver.wait_for(2)
    receiver.fail_next(3)

    receiver.reset()
    assert receiver.received == []
    assert held.result(BOUND).status_code == 200
    # The released request must not reappear, and no stall or failure is left pending.
    assert client.post(receiver.url_for("/fresh")).status_code == 200
    assert [(record.path, record.answered) for record in receiver.received] == [("/fresh", 200)]


def test_stop_before_start_is_harmless() -> None:
    CallbackReceiver().stop()
