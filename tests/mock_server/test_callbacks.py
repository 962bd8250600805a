"""Callbacks as a receiver sees them: over real HTTP to 127.0.0.1, on the fake's clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest

from mock_server.config import KeyPolicy
from mock_server.delivery import CallbackFault, DeliveryPolicy, Fault, FaultRule
from mock_server.receiver import CallbackReceiver, ReceivedCallback
from mock_server.server import free_port
from mock_server.spec import spec

from ..conformance import callback_problems
from ..conftest import KEY, OTHER_KEY, PAGE_EXAMPLE, Fake, auth, build_fake, fixed_config

MakeFake = Callable[..., Fake]
SECRET = "whsec_test_0123456789abcdef"
END = 13.0  # the fixed timing: every task ends 13 s after it was created


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """A real receiver; every body it got is checked against the spec's `callbacks`."""
    with CallbackReceiver() as running:
        yield running
        running.release()
        for delivery in running.received:
            assert callback_problems(delivery.body) == [], delivery.body[:200]


def with_callback(url: str, prompt: str = "a banana") -> dict[str, Any]:
    return {"model": "Nano-Banana-Pro", "input": {"prompt": prompt}, "callback": {"url": url}}


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_ok(received: ReceivedCallback, secret: str, now: float) -> bool:
    stamp = received.headers.get("x-hiapi-timestamp", "")
    given = received.headers.get("x-hiapi-signature", "")
    fresh = stamp.isdigit() and abs(now - int(stamp)) <= 300
    return fresh and hmac.compare_digest(independent_signature(secret, stamp, received.body), given)


def finish(fake: Fake, seconds: float = END) -> None:
    fake.clock.advance(seconds)
    fake.backend.callbacks.wait_idle()


# -- delivery and signing -------------------------------------------------------------------------


def test_finished_task_is_posted_signed_and_equal_to_get(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    fake = make_fake(fixed_config(webhook_secret=SECRET))
    task_id = fake.task_id(with_callback(receiver.url_for("/hooks/hiapi")))
    fake.clock.advance(END - 1)
    fake.backend.callbacks.wait_idle()
    assert receiver.received == []  # not before the task ends
    finish(fake, 1)
    (delivered,) = receiver.wait_for(1)
    assert (delivered.method, delivered.path) == ("POST", "/hooks/hiapi")
    assert delivered.headers["content-type"] == "application/json"
    assert delivered.json() == fake.task(task_id)
    assert delivered.json()["status"] == "success"
    assert spec().validate_component("Task", delivered.json()) == []
    assert signature_ok(delivered, SECRET, fake.clock.now())
    assert delivered.headers["x-hiapi-timestamp"] == str(int(fake.clock.now()))


def test_failed_tasks_are_delivered_too(make_fake: MakeFake, receiver: CallbackReceiver) -> None:
    fake = make_fake(fixed_config(failure_rate=1.0))
    task_id = fake.task_id(with_callback(receiver.url_for()))
    finish(fake, 11)
    (delivered,) = receiver.wait_for(1)
    assert delivered.json() == fake.task(task_id)
    assert delivered.json()["error"]["code"] == "TASK_FAILED"


def test_no_signing_key_means_no_signature_headers(fake: Fake, receiver: CallbackReceiver) -> None:
    fake.task_id(with_callback(receiver.url_for()))
    finish(fake)
    (delivered,) = receiver.wait_for(1)
    assert "x-hiapi-signature" not in delivered.headers
    assert "x-hiapi-timestamp" not in delivered.headers


def test_a_keys_own_signing_key_wins_over_the_global_one(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    own = "own-key-for-bob-0123456789"
    keys = {KEY: KeyPolicy(), OTHER_KEY: KeyPolicy(webhook_secret=own)}
    fake = make_fake(fixed_config(webhook_secret=SECRET, keys=keys))
    fake.task_id(with_callback(receiver.url_for("/alice")))
    fake.task_id(with_callback(receiver.url_for("/bob")), key=OTHER_KEY)
    finish(fake)
    by_path = {r.path: r for r in receiver.wait_for(2)}
    assert signature_ok(by_path["/alice"], SECRET, fake.clock.now())
    assert signature_ok(by_path["/bob"], own, fake.clock.now())
    assert not signature_ok(by_path["/bob"], SECRET, fake.clock.now())


@pytest.mark.parametrize("secret", ["x" * 15, "x" * 257])
def test_signing_keys_outside_16_to_256_characters_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="16 to 256"):
        fixed_config(webhook_secret=secret)
    with pytest.raises(ValueError, match="16 to 256"):
        KeyPolicy(webhook_secret=secret)


# -- retries -------------------------------------------------------------------------------------


def test_a_500_then_200_is_retried_once_after_60_seconds(
    fake: Fake, receiver: CallbackReceiver
) -> None:
    receiver.fail_next(1, status=500)
    task_id = fake.task_id(with_callback(receiver.url_for()))
    end = fake.clock.now() + END
    finish(fake)
    assert [r.answered for r in receiver.wait_for(1)] == [500]
    finish(fake, 59.9)
    assert len(receiver.received) == 1
    finish(fake, 0.1)
    first, second = receiver.wait_for(2)
    assert (first.answered, second.answered) == (500, 200)
    assert first.body == second.body
    log = fake.backend.callbacks.for_task(task_id)
    assert [(a.attempt, a.status, a.sent_at) for a in log] == [(1, 500, end), (2, 200, end + 60)]
    finish(fake, 3600)
    assert len(receiver.received) == 2  # delivered: nothing more


def test_a_receiver_that_is_down_gets_four_attempts_then_none(fake: Fake) -> None:
    dead = f"http://127.0.0.1:{free_port()}/callback"
    task_id = fake.task_id(with_callback(dead))
    end = fake.clock.now() + END
    finish(fake)
    for step in (60, 300, 1200, 86_400):
        finish(fake, step)
    log = fake.backend.callbacks.for_task(task_id)
    assert [a.attempt for a in log] == [1, 2, 3, 4]
    assert [a.sent_at for a in log] == [end, end + 60, end + 360, end + 1560]
    assert all(a.status is None and a.error for a in log)
    assert fake.task(task_id)["status"] == "success"  # the task is unchanged


def test_an_attempt_times_out_on_the_fakes_clock_and_is_retried(
    fake: Fake, receiver: CallbackReceiver
) -> None:
    receiver.stall_next(1)
    task_id = fake.task_id(with_callback(receiver.url_for()))
    fake.clock.advance(END)
    receiver.wait_for(1)  # arrived, held without an answer
    finish(fake, 10)  # the attempt's 10 s run out on the fake's clock
    (first,) = fake.backend.callbacks.for_task(task_id)
    assert first.status is None and "timed out" in (first.error or "")
    finish(fake, 60)
    retried = receiver.wait_for(2)[1]
    assert retried.answered == 200
    assert [a.ok for a in fake.backend.callbacks.for_task(task_id)] == [False, True]


def test_the_schedule_and_timeout_are_configurable(make_fake: MakeFake) -> None:
    policy = DeliveryPolicy(timeout=2.0, retry_delays=(5.0, 5.0))
    fake = make_fake(fixed_config(delivery=policy))
    task_id = fake.task_id(with_callback(f"http://127.0.0.1:{free_port()}/x"))
    end = fake.clock.now() + END
    finish(fake)
    finish(fake, 5)
    finish(fake, 5)
    finish(fake, 1000)
    log = fake.backend.callbacks.for_task(task_id)
    assert [a.sent_at for a in log] == [end, end + 5, end + 10]


# -- faults --------------------------------------------------------------------------------------


def faulty(make_fake: MakeFake, fault: CallbackFault, **config: Any) -> Fake:
    rule = FaultRule(fault, prompt_contains="[faulty]")
    return make_fake(fixed_config(callback_faults=(rule,), **config))


def test_drop_never_sends_and_polling_still_sees_the_end(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    fake = faulty(make_fake, CallbackFault(Fault.DROP))
    dropped = fake.task_id(with_callback(receiver.url_for(), "[faulty] one"))
    kept = fake.task_id(with_callback(receiver.url_for(), "plain"))
    finish(fake, 100_000)
    (arrived,) = receiver.wait_for(1)
    assert arrived.json()["taskId"] == kept
    assert fake.task(dropped)["status"] == "success"
    (log,) = fake.backend.callbacks.for_task(dropped)
    assert (log.fault, log.sent_at, log.status) == ("drop", None, None)


def test_duplicate_sends_n_identical_copies(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    fake = faulty(make_fake, CallbackFault(Fault.DUPLICATE, copies=3), webhook_secret=SECRET)
    task_id = fake.task_id(with_callback(receiver.url_for(), "[faulty]"))
    finish(fake)
    copies = receiver.wait_for(3)
    assert len({c.body for c in copies}) == 1
    assert all(signature_ok(c, SECRET, fake.clock.now()) for c in copies)
    assert sorted(a.copy for a in fake.backend.callbacks.for_task(task_id)) == [1, 2, 3]
    assert {a.fault for a in fake.backend.callbacks.for_task(task_id)} == {"duplicate"}


def test_delay_arrives_late_after_the_client_already_polled_the_end(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    fake = faulty(make_fake, CallbackFault(Fault.DELAY, delay=90))
    task_id = fake.task_id(with_callback(receiver.url_for(), "[faulty]"))
    finish(fake)
    assert fake.task(task_id)["status"] == "success"
    finish(fake, 89)
    assert receiver.received == []
    finish(fake, 1)
    (late,) = receiver.wait_for(1)
    assert late.json() == fake.task(task_id)


def test_reorder_delivers_a_burst_newest_first(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    fake = faulty(make_fake, CallbackFault(Fault.REORDER, window=60))
    fake.clock.set(1_767_225_600 + 10)  # the burst window ends at :60, past every task's end
    ids = []
    for _ in range(5):
        ids.append(fake.task_id(with_callback(receiver.url_for(), "[faulty]")))
        fake.clock.advance(1)
    finish(fake, END)
    assert receiver.received == []  # held until the window closes
    finish(fake, 60)
    arrived = [r.json()["taskId"] for r in receiver.wait_for(5)]
    assert arrived == list(reversed(ids))


def test_bad_signature_does_not_verify(make_fake: MakeFake, receiver: CallbackReceiver) -> None:
    fake = faulty(make_fake, CallbackFault(Fault.BAD_SIGNATURE), webhook_secret=SECRET)
    fake.task_id(with_callback(receiver.url_for(), "[faulty]"))
    fake.task_id(with_callback(receiver.url_for(), "plain"))
    finish(fake)
    verdicts = {
        r.json()["taskId"]: signature_ok(r, SECRET, fake.clock.now()) for r in receiver.wait_for(2)
    }
    assert sorted(verdicts.values()) == [False, True]
    faulted = [r for r in receiver.received if not signature_ok(r, SECRET, fake.clock.now())]
    assert len(faulted[0].headers["x-hiapi-signature"]) == 64


def test_stale_timestamp_is_correctly_signed_but_too_old(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    fake = faulty(
        make_fake, CallbackFault(Fault.STALE_TIMESTAMP, stale_by=301), webhook_secret=SECRET
    )
    fake.task_id(with_callback(receiver.url_for(), "[faulty]"))
    finish(fake)
    (stale,) = receiver.wait_for(1)
    stamp = stale.headers["x-hiapi-timestamp"]
    assert int(stamp) == int(fake.clock.now()) - 301
    assert stale.headers["x-hiapi-signature"] == independent_signature(SECRET, stamp, stale.body)
    assert not signature_ok(stale, SECRET, fake.clock.now())


def test_a_fault_can_be_set_per_task_from_python(fake: Fake, receiver: CallbackReceiver) -> None:
    task_id = fake.task_id(with_callback(receiver.url_for()))
    fake.backend.callbacks.set_fault(task_id, CallbackFault(Fault.DUPLICATE, copies=2))
    finish(fake)
    assert len(receiver.wait_for(2)) == 2


# -- at scale ------------------------------------------------------------------------------------


def test_hundreds_of_concurrent_tasks_each_get_exactly_what_was_asked(
    make_fake: MakeFake, receiver: CallbackReceiver
) -> None:
    rules = (
        FaultRule(CallbackFault(Fault.DROP), prompt_contains="[drop]"),
        FaultRule(CallbackFault(Fault.DUPLICATE, copies=2), prompt_contains="[dup]"),
    )
    fake = make_fake(fixed_config(callback_faults=rules, webhook_secret=SECRET))
    kinds = ["plain", "plain", "plain", "[drop]", "[dup]"]
    url = receiver.url_for()

    def create(i: int) -> tuple[str, str]:
        kind = kinds[i % len(kinds)]
        return fake.task_id(with_callback(url, f"{kind} task {i}")), kind

    with ThreadPoolExecutor(16) as pool:
        created = list(pool.map(create, range(300)))
    finish(fake)
    expected = {task_id: {"plain": 1, "[drop]": 0, "[dup]": 2}[kind] for task_id, kind in created}
    arrived = receiver.wait_for(sum(expected.values()))
    fake.backend.callbacks.wait_idle()
    counts = {task_id: 0 for task_id in expected}
    for delivery in receiver.received:
        counts[delivery.json()["taskId"]] += 1
        assert signature_ok(delivery, SECRET, fake.clock.now())
    assert counts == expected
    assert len(arrived) == len(receiver.received) == 300  # 3 plain + 0 dropped + 2 copies per 5


def test_a_stalled_receiver_does_not_hold_up_the_api(receiver: CallbackReceiver) -> None:
    fake = build_fake(fixed_config(delivery=DeliveryPolicy(timeout=30.0)), "uvicorn")
    try:
        receiver.stall_next(40)
        for _ in range(40):
            fake.task_id(with_callback(receiver.url_for()))
        fake.clock.advance(END)
        receiver.wait_for(40)  # forty deliveries held open by the receiver
        quick = httpx2.Timeout(5.0)
        for _ in range(20):
            created = fake.client.post(
                "/v1/tasks", json=PAGE_EXAMPLE, headers=auth(), timeout=quick
            )
            assert created.status_code == 200
            assert fake.client.get("/v1/tasks", headers=auth(), timeout=quick).status_code == 200
        receiver.release()
        fake.backend.callbacks.wait_idle()
        assert sum(a.ok for a in fake.backend.callbacks.log) == 40
    finally:
        fake.close()


# -- the callback URL policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/cb", "example.com/cb", "http://", "https:///path", "http://exa mple.com"],
)
def test_other_schemes_and_malformed_urls_are_400_naming_callback_url(
    asgi_fake: Fake, url: str
) -> None:
    response = asgi_fake.create(with_callback(url))
    assert response.status_code == 400
    assert response.json()["message"].startswith("callback.url:")


def test_https_only_refuses_http(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(callback_https_only=True))
    refused = fake.create(with_callback("http://127.0.0.1:9/cb"))
    assert refused.status_code == 400
    assert "callback.url: must be an https:// URL" in refused.json()["message"]
    assert fake.create(with_callback("https://hooks.example.com/cb")).status_code == 200


def test_allowed_hosts_limit_where_callbacks_go(make_fake: MakeFake) -> None:
    fake = make_fake(fixed_config(callback_hosts=("127.0.0.1", "*.example.com")))
    assert fake.create(with_callback("http://127.0.0.1:9/cb")).status_code == 200
    assert fake.create(with_callback("https://hooks.example.com/cb")).status_code == 200
    refused = fake.create(with_callback("http://169.254.169.254/latest/meta-data"))
    assert refused.status_code == 400
    assert "not an allowed callback host" in refused.json()["message"]
    assert fake.create(with_callback("https://example.com.evil.test/cb")).status_code == 400


def test_the_delivery_log_records_every_detail(fake: Fake, receiver: CallbackReceiver) -> None:
    task_id = fake.task_id(with_callback(receiver.url_for("/log")))
    end = fake.clock.now() + END
    finish(fake)
    (entry,) = fake.backend.callbacks.for_task(task_id)
    assert entry.url == receiver.url_for("/log")
    assert (entry.attempt, entry.copy, entry.scheduled_at, entry.sent_at) == (1, 1, end, end)
    assert entry.headers["Content-Type"] == "application/json"
    assert (entry.status, entry.error, entry.fault) == (200, None, None)
    assert entry.duration >= 0
    assert json.loads(receiver.received[0].body)["taskId"] == task_id
