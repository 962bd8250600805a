"""The request journal without HTTP: what an entry keeps, the filters, masking, bounds, reset."""

from __future__ import annotations

import pytest

from mock_server.journal import Journal, JournalEntry, key_digest, mask_key

ALICE = "sk-test-alice"
BOB = "sk-test-bob-0123"


def record(
    journal: Journal,
    *,
    method: str = "GET",
    path: str = "/v1/tasks",
    task_id: str | None = None,
    api_key: str | None = ALICE,
    body: bytes = b"",
    status: int = 200,
    headers: dict[str, str] | None = None,
    at: float = 1_767_225_600.0,
) -> JournalEntry:
    sent = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return journal.record(
        at=at,
        method=method,
        path=path,
        query="",
        headers={**sent, **(headers or {})},
        body=body,
        status=status,
        task_id=task_id,
        api_key=api_key,
        duration_ms=1.5,
    )


def test_an_entry_keeps_what_was_asked_and_answered() -> None:
    journal = Journal()
    entry = journal.record(
        at=1_767_225_601.5,
        method="POST",
        path="/v1/tasks",
        query="a=1",
        headers={"content-type": "application/json", "x-test-case": "abc"},
        body=b'{"model": "Nano-Banana-Pro"}',
        status=200,
        task_id="tk-1",
        api_key=None,
        duration_ms=2.25,
    )
    assert journal.entries() == [entry]
    assert entry.to_json() == {
        "seq": 1,
        "at": 1_767_225_601.5,
        "method": "POST",
        "path": "/v1/tasks",
        "query": "a=1",
        "headers": {"content-type": "application/json", "x-test-case": "abc"},
        "body": '{"model": "Nano-Banana-Pro"}',
        "status": 200,
        "task_id": "tk-1",
        "api_key": None,
        "duration_ms": 2.25,
    }
    assert len(journal) == 1


def test_entries_are_oldest_first_with_rising_seq() -> None:
    journal = Journal()
    for path in ("/a", "/b", "/c"):
        record(journal, path=path)
    assert [(e.seq, e.path) for e in journal.entries()] == [(1, "/a"), (2, "/b"), (3, "/c")]


def test_the_key_is_masked_in_the_entry_and_in_the_authorization_header() -> None:
    journal = Journal()
    entry = record(journal, headers={"x-mock-token": "secret-token-123"})
    assert entry.api_key == "sk-t…lice" == mask_key(ALICE)
    assert entry.headers["authorization"] == "Bearer sk-t…lice"
    assert entry.headers["x-mock-token"] == "secr…-123"
    assert ALICE not in str(entry.to_json())
    assert "secret-token-123" not in str(entry.to_json())


def test_a_header_name_in_any_case_is_masked() -> None:
    journal = Journal()
    entry = journal.record(
        at=0.0, method="GET", path="/v1/tasks", query="",
        headers={"Authorization": f"Bearer {ALICE}"}, body=b"", status=200, task_id=None,
        api_key=ALICE, duration_ms=0.0,
    )  # fmt: skip
    assert entry.headers == {"Authorization": "Bearer sk-t…lice"}


@pytest.mark.parametrize(("key", "shown"), [("sk-1234567", "…"), ("sk-12345678", "sk-1…5678")])
def test_a_short_key_shows_nothing(key: str, shown: str) -> None:
    assert mask_key(key) == shown


def test_an_authorization_header_without_a_scheme_is_masked_whole() -> None:
    entry = record(Journal(), api_key=None, headers={"authorization": ALICE})
    assert entry.headers["authorization"] == "sk-t…lice"


def test_filter_by_path_task_key_and_method() -> None:
    journal = Journal()
    create = record(journal, method="POST", path="/v1/tasks", task_id="tk-1")
    read = record(journal, path="/v1/tasks/tk-1", task_id="tk-1")
    listed = record(journal, path="/v1/tasks", api_key=BOB)
    anonymous = record(journal, path="/v1/tasks", api_key=None, status=401)

    assert journal.entries(path="/v1/tasks") == [create, listed, anonymous]
    assert journal.entries(path="/v1/tasks/") == []  # exact, not a prefix
    assert journal.entries(task="tk-1") == [create, read]
    assert journal.entries(key=ALICE) == [create, read]  # by the unmasked key
    assert journal.entries(key=BOB) == [listed]
    assert journal.entries(key="sk-t…lice") == []  # the masked form finds nothing
    assert journal.entries(key="sk-test-carol") == []
    assert journal.entries(method="POST") == [create]
    assert journal.entries(method="get") == [read, listed, anonymous]
    assert journal.entries(path="/v1/tasks", key=ALICE, method="POST") == [create]


def test_the_key_is_kept_only_as_a_digest() -> None:
    journal = Journal()
    record(journal)
    assert key_digest(ALICE) != ALICE and len(key_digest(ALICE)) == 16
    assert key_digest(ALICE) == key_digest(ALICE) != key_digest(BOB)
    assert journal.entries(key=ALICE)[0].api_key == "sk-t…lice"


def test_limit_keeps_the_newest() -> None:
    journal = Journal()
    for i in range(10):
        record(journal, path=f"/v1/tasks/{i}", task_id="tk-1" if i % 2 else None)
    assert [e.seq for e in journal.entries(limit=3)] == [8, 9, 10]
    assert [e.seq for e in journal.entries(task="tk-1", limit=2)] == [8, 10]
    assert len(journal.entries(limit=100)) == 10


def test_the_body_is_cut_at_64_kib() -> None:
    journal = Journal()
    entry = record(journal, method="POST", body=b"x" * (64 * 1024 + 10))
    assert entry.body == "x" * 64 * 1024
    small = record(journal, method="POST", body=b'{"prompt": "banana"}')
    assert small.body == '{"prompt": "banana"}'


def test_a_body_that_is_not_utf8_is_kept_readable() -> None:
    entry = record(Journal(), method="POST", body=b"\xff\xfe{}")
    assert entry.body == "\ufffd\ufffd{}"


def test_the_ring_keeps_only_the_last_size_entries() -> None:
    journal = Journal(size=3)
    for i in range(7):
        record(journal, path=f"/{i}")
    assert len(journal) == 3
    assert [(e.seq, e.path) for e in journal.entries()] == [(5, "/4"), (6, "/5"), (7, "/6")]


def test_reset_forgets_everything_and_seq_starts_again() -> None:
    journal = Journal()
    for _ in range(3):
        record(journal)
    journal.reset()
    assert journal.entries() == [] and len(journal) == 0
    assert record(journal).seq == 1
    assert journal.entries(key=ALICE)[0].seq == 1


def asgi_scope(headers: list[tuple[bytes, bytes]], path: str = "/v1/tasks") -> dict[str, object]:
    return {"method": "POST", "path": path, "query_string": b"a=1", "headers": headers}


def test_a_request_recorded_from_asgi_reads_back_as_an_entry_with_its_secrets_masked() -> None:
    journal = Journal()
    headers = [
        (b"authorization", f"Bearer {ALICE}".encode()),
        (b"x-mock-token", b"secret-token-123"),
        (b"content-type", b"application/json"),
    ]
    journal.record_asgi(5.0, asgi_scope(headers), b'{"a": "\xc3\xa9"}', 200, "tk-1", 1.25)
    (entry,) = journal.entries()
    assert entry.to_json() == {
        "seq": 1, "at": 5.0, "method": "POST", "path": "/v1/tasks", "query": "a=1",
        "headers": {
            "authorization": "Bearer sk-t…lice", "x-mock-token": "secr…-123",
            "content-type": "application/json",
        },
        "body": '{"a": "é"}', "status": 200, "task_id": "tk-1", "api_key": "sk-t…lice",
        "duration_ms": 1.25,
    }  # fmt: skip
    assert headers[0][1] == f"Bearer {ALICE}".encode()  # the request's own headers untouched
    assert journal.entries(key=ALICE) == [entry] and journal.entries(key=BOB) == []


def test_asgi_records_of_many_keys_are_each_found_by_their_own_key() -> None:
    journal = Journal()
    keys = [f"sk-test-key-{n:04d}" for n in range(50)]
    for key in keys * 2:
        journal.record_asgi(0.0, asgi_scope([(b"authorization", f"Bearer {key}".encode())]),
                            b"", 200, None, 0.0)  # fmt: skip
    for key in keys:
        found = journal.entries(key=key)
        assert len(found) == 2 and found[0].api_key == mask_key(key)


def test_an_asgi_record_without_a_bearer_key_has_none_and_keeps_its_header_masked() -> None:
    journal = Journal()
    journal.record_asgi(0.0, asgi_scope([(b"authorization", ALICE.encode())]), b"", 401, None, 0)
    journal.record_asgi(0.0, asgi_scope([(b"authorization", b"Basic dXNlcjpwYXNzd29yZA==")]),
                        b"", 401, None, 0)  # fmt: skip
    plain, basic = journal.entries()
    assert (plain.api_key, plain.headers["authorization"]) == (None, "sk-t…lice")
    assert (basic.api_key, basic.headers["authorization"]) == (None, "Basic dXNl…ZA==")
    assert journal.entries(key=ALICE) == []


def test_asgi_records_mix_with_direct_ones_in_one_order_and_one_ring() -> None:
    journal = Journal(size=3)
    record(journal, path="/a")
    journal.record_asgi(0.0, asgi_scope([], path="/b"), b"x" * (64 * 1024 + 1), 200, None, 0.0)
    record(journal, path="/c")
    record(journal, path="/d")
    assert [(e.seq, e.path) for e in journal.entries()] == [(2, "/b"), (3, "/c"), (4, "/d")]
    assert len(journal.entries(path="/b")[0].body) == 64 * 1024
