"""`verify_callback`: signature, freshness and body of one delivery."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from starlette.datastructures import Headers

from client import CallbackVerificationError, parse_callback, sign_callback, verify_callback

from .support import TASK_ID, task_data

SECRET = "whsec_0123456789abcdef"
NOW = 1_795_619_500
BODY = json.dumps(task_data("success")).encode()


def oracle(body: bytes, secret: str = SECRET, stamp: str = str(NOW)) -> dict[str, str]:
    """The documented scheme, computed here independently of the client."""
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-HiAPI-Timestamp": stamp, "X-HiAPI-Signature": digest}


def test_a_valid_delivery_gives_its_task() -> None:
    task = verify_callback(BODY, oracle(BODY), SECRET, now=NOW)
    assert task.task_id == TASK_ID and task.succeeded


def test_sign_callback_matches_the_documented_scheme() -> None:
    assert sign_callback(BODY, SECRET, timestamp=NOW) == oracle(BODY)


def test_the_secret_is_used_as_utf8_bytes_not_decoded() -> None:
    secret = "clé-de-signature-été-2026"
    verify_callback(BODY, oracle(BODY, secret=secret), secret, now=NOW)
    with pytest.raises(CallbackVerificationError):
        verify_callback(BODY, oracle(BODY, secret=secret), secret.encode().hex(), now=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {k.lower(): v for k, v in oracle(BODY).items()},
        {k.upper(): v for k, v in oracle(BODY).items()},
        httpx.Headers(oracle(BODY)),
        Headers(oracle(BODY)),
    ],
)
def test_header_names_match_whatever_their_case(headers: dict[str, str]) -> None:
    assert verify_callback(BODY, headers, SECRET, now=NOW).task_id == TASK_ID


def test_surrounding_whitespace_and_uppercase_hex_are_tolerated() -> None:
    headers = oracle(BODY)
    headers = {k: f" {v.upper()} " for k, v in headers.items()}
    assert verify_callback(BODY, headers, SECRET, now=NOW).task_id == TASK_ID


def test_a_tampered_body_is_rejected() -> None:
    tampered = BODY.replace(b'"success"', b'"fail"   ')
    with pytest.raises(CallbackVerificationError, match="does not match"):
        verify_callback(tampered, oracle(BODY), SECRET, now=NOW)


def test_a_wrong_key_is_rejected() -> None:
    with pytest.raises(CallbackVerificationError, match="does not match"):
        verify_callback(BODY, oracle(BODY, secret="another-key-0123456"), SECRET, now=NOW)


def test_a_timestamp_changed_after_signing_is_rejected() -> None:
    headers = oracle(BODY)
    headers["X-HiAPI-Timestamp"] = str(NOW + 1)
    with pytest.raises(CallbackVerificationError, match="does not match"):
        verify_callback(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)]
)
def test_timestamps_beyond_the_tolerance_are_rejected(offset: int, accepted: bool) -> None:
    headers = oracle(BODY)
    if accepted:
        verify_callback(BODY, headers, SECRET, now=NOW + offset)
    else:
        with pytest.raises(CallbackVerificationError, match="away from now"):
            verify_callback(BODY, headers, SECRET, now=NOW + offset)


def test_a_custom_tolerance() -> None:
    with pytest.raises(CallbackVerificationError):
        verify_callback(BODY, oracle(BODY), SECRET, now=NOW + 11, tolerance=10)
    verify_callback(BODY, oracle(BODY), SECRET, now=NOW + 10, tolerance=10)


@pytest.mark.parametrize("missing", ["X-HiAPI-Timestamp", "X-HiAPI-Signature"])
def test_a_missing_header_is_rejected(missing: str) -> None:
    headers = oracle(BODY)
    del headers[missing]
    with pytest.raises(CallbackVerificationError, match="missing"):
        verify_callback(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-HiAPI-Timestamp", ""),
        ("X-HiAPI-Timestamp", "soon"),
        ("X-HiAPI-Timestamp", "1795619500.0"),
        ("X-HiAPI-Timestamp", "-1795619500"),
        ("X-HiAPI-Timestamp", "١٧٩٥٦١٩٥٠٠"),
        ("X-HiAPI-Timestamp", "1795619500é"),
        ("X-HiAPI-Timestamp", "9" * 400),
        ("X-HiAPI-Signature", ""),
        ("X-HiAPI-Signature", "é" * 64),
        ("X-HiAPI-Signature", "0" * 63),
        ("X-HiAPI-Signature", "g" * 64),
        ("X-HiAPI-Signature", "sha256=" + "0" * 64),
    ],
)
def test_malformed_or_non_ascii_values_are_rejected_never_crash(name: str, value: str) -> None:
    headers = oracle(BODY)
    headers[name] = value
    with pytest.raises(CallbackVerificationError):
        verify_callback(BODY, headers, SECRET, now=NOW)


def test_the_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("client.callbacks.hmac.compare_digest", spy)
    verify_callback(BODY, oracle(BODY), SECRET, now=NOW)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [(b"not json", "not JSON"), (b'{"taskId": 1}', "not a task"), (b"[]", "task")],
)
def test_a_signed_body_that_is_not_a_task_is_rejected(body: bytes, match: str) -> None:
    with pytest.raises(CallbackVerificationError, match=match):
        verify_callback(body, oracle(body), SECRET, now=NOW)


def test_an_empty_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        verify_callback(BODY, oracle(BODY), "", now=NOW)


def test_parse_callback_reads_an_unsigned_body() -> None:
    assert parse_callback(BODY).task_id == TASK_ID
    with pytest.raises(CallbackVerificationError):
        parse_callback(b"\xff")
