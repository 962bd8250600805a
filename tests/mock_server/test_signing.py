"""Tests for mock_server.signing: HiAPI's callback signature, checked against an HMAC computed
here with `hmac`/`hashlib`, never against the module's own output."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from mock_server.signing import (
    MAX_SECRET,
    MIN_SECRET,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE,
    check_secret,
    sign,
    signature_headers,
    verify,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_767_225_600
STAMP = str(NOW)
BODY = b'{"taskId":"task_01JGZ0000000000000000000","status":"success"}'
#: HMAC-SHA256(SECRET as UTF-8, STAMP + "." + BODY), computed once with hmac and frozen here so a
#: change to the scheme (encoding, separator, digest, case) is caught.
KNOWN_SIGNATURE = "5814f0141a756e36245296f81abe6efcf55d57bc7e40ce14467171a60ac11000"


def expected(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature as a receiver computes it, independently of the module under test."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def in_digits(zero: int) -> str:
    """STAMP written with the Unicode digits whose zero is code point `zero`."""
    return "".join(chr(zero + int(digit)) for digit in STAMP)


# --- sign -------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    assert sign(SECRET, STAMP, BODY) == expected(SECRET, STAMP, BODY)


def test_sign_is_64_lowercase_hex_characters() -> None:
    signature = sign(SECRET, STAMP, BODY)
    assert len(signature) == 64
    assert set(signature) <= set("0123456789abcdef")


def test_known_answer_vector() -> None:
    assert expected(SECRET, STAMP, BODY) == KNOWN_SIGNATURE
    assert sign(SECRET, STAMP, BODY) == KNOWN_SIGNATURE


def test_module_docstring_vector_in_full() -> None:
    body = b'{"taskId":"x"}'
    signature = sign("whsec_0123456789abcdef", "1767225600", body)
    assert signature == expected("whsec_0123456789abcdef", "1767225600", body)
    assert signature == "2f150a62b0e7849a2165e98686f6f31c5c99e7bcf8ae7919bdeb67fb6d93fab2"


def test_whsec_key_is_used_as_its_utf8_bytes_not_base64_decoded() -> None:
    decoded = base64.b64decode(SECRET.removeprefix("whsec_"))
    signature = sign(SECRET, STAMP, BODY)
    assert signature == expected(SECRET.encode("utf-8"), STAMP, BODY)
    assert signature != expected(decoded, STAMP, BODY)


def test_non_ascii_key_is_used_as_its_utf8_bytes() -> None:
    secret = "clé-secrète-très-longue-🍌"
    assert sign(secret, STAMP, BODY) == expected(secret.encode("utf-8"), STAMP, BODY)
    assert sign(secret, STAMP, BODY) != expected(secret.encode("latin-1", "replace"), STAMP, BODY)


@pytest.mark.parametrize(
    "body",
    [
        '{"prompt":"café sur la plage ✓ 🍌"}'.encode(),
        '{"prompt":"café"}'.encode("utf-16"),
        b"\xff\xfe\x00not utf-8\x80",
        b"",
    ],
    ids=["utf-8", "utf-16", "invalid-utf-8", "empty"],
)
def test_sign_covers_the_raw_body_bytes(body: bytes) -> None:
    assert sign(SECRET, STAMP, body) == expected(SECRET, STAMP, body)


def test_sign_depends_on_every_part() -> None:
    base = sign(SECRET, STAMP, BODY)
    assert sign(SECRET + "x", STAMP, BODY) != base
    assert sign(SECRET, str(NOW + 1), BODY) != base
    assert sign(SECRET, STAMP, BODY + b" ") != base


# --- signature_headers ------------------------------------------------------------------


def test_header_names_are_hiapis() -> None:
    assert TIMESTAMP_HEADER == "X-HiAPI-Timestamp"
    assert SIGNATURE_HEADER == "X-HiAPI-Signature"


def test_signature_headers_carry_timestamp_and_signature() -> None:
    headers = signature_headers(SECRET, NOW, BODY)
    assert headers == {
        "X-HiAPI-Timestamp": "1767225600",
        "X-HiAPI-Signature": KNOWN_SIGNATURE,
    }


def test_signature_headers_timestamp_is_a_string_of_an_int() -> None:
    headers = signature_headers(SECRET, 1_700_000_123, BODY)
    stamp = headers[TIMESTAMP_HEADER]
    assert isinstance(stamp, str)
    assert stamp == "1700000123"
    assert headers[SIGNATURE_HEADER] == expected(SECRET, "1700000123", BODY)


def test_signature_headers_verify_as_a_receiver_would() -> None:
    headers = signature_headers(SECRET, NOW, BODY)
    assert verify(SECRET, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], BODY, NOW)


# --- verify -----------------------------------------------------------------------------


def test_tolerance_is_300_seconds() -> None:
    assert TOLERANCE == 300


def test_verify_accepts_a_fresh_correct_signature() -> None:
    assert verify(SECRET, STAMP, expected(SECRET, STAMP, BODY), BODY, float(NOW))


def test_verify_rejects_a_body_changed_by_one_byte() -> None:
    signature = expected(SECRET, STAMP, BODY)
    changed = BODY[:-2] + bytes([BODY[-2] ^ 0x01]) + BODY[-1:]
    assert len(changed) == len(BODY)
    assert not verify(SECRET, STAMP, signature, changed, NOW)


def test_verify_rejects_an_extra_byte() -> None:
    signature = expected(SECRET, STAMP, BODY)
    assert not verify(SECRET, STAMP, signature, BODY + b"\n", NOW)


def test_verify_rejects_a_wrong_key() -> None:
    signature = expected("whsec_someone-elses-signing-key", STAMP, BODY)
    assert not verify(SECRET, STAMP, signature, BODY, NOW)


@pytest.mark.parametrize(
    ("offset", "valid"),
    [(-301, False), (-300, True), (0, True), (300, True), (301, False)],
)
def test_verify_tolerance_is_300_seconds_either_way(offset: int, valid: bool) -> None:
    """A timestamp `offset` seconds from the receiver's clock, correctly signed."""
    stamp = str(NOW + offset)
    signature = expected(SECRET, stamp, BODY)
    assert verify(SECRET, stamp, signature, BODY, float(NOW)) is valid


def test_verify_compares_against_a_fractional_clock() -> None:
    signature = expected(SECRET, STAMP, BODY)
    assert verify(SECRET, STAMP, signature, BODY, NOW + 299.9)
    assert not verify(SECRET, STAMP, signature, BODY, NOW + 300.1)


@pytest.mark.parametrize(
    "stamp",
    ["", "abc", "1767225600.0", "-1767225600", "+1767225600", " 1767225600", "1767225600\n"],
)
def test_verify_rejects_a_non_numeric_timestamp(stamp: str) -> None:
    """Even with a signature that is correct over that very timestamp string."""
    signature = expected(SECRET, stamp, BODY)
    assert not verify(SECRET, stamp, signature, BODY, float(NOW))


@pytest.mark.parametrize(
    "stamp",
    [in_digits(0x0660), in_digits(0xFF10), "\u00b2"],
    ids=["arabic-indic-digits", "fullwidth-digits", "superscript-two"],
)
def test_verify_rejects_non_ascii_digits_instead_of_raising(stamp: str) -> None:
    """`str.isdigit()` is true for these, but a Unix timestamp header is ASCII digits only: a
    receiver given one must answer False, not crash (`"²"` is even valid latin-1 in a header)."""
    assert verify(SECRET, stamp, KNOWN_SIGNATURE, BODY, float(NOW)) is False


def test_verify_rejects_an_uppercase_hex_signature() -> None:
    signature = expected(SECRET, STAMP, BODY)
    assert signature.upper() != signature
    assert not verify(SECRET, STAMP, signature.upper(), BODY, NOW)


@pytest.mark.parametrize("length", [0, 1, 32, 63])
def test_verify_rejects_a_truncated_signature(length: int) -> None:
    signature = expected(SECRET, STAMP, BODY)[:length]
    assert not verify(SECRET, STAMP, signature, BODY, NOW)


def test_verify_rejects_a_signature_with_extra_characters() -> None:
    signature = expected(SECRET, STAMP, BODY)
    assert not verify(SECRET, STAMP, signature + "0", BODY, NOW)
    assert not verify(SECRET, STAMP, "sha256=" + signature, BODY, NOW)


def test_verify_rejects_a_non_ascii_signature_instead_of_raising() -> None:
    """Header values arrive decoded as latin-1; `hmac.compare_digest` raises TypeError on
    non-ASCII str, so a receiver must answer False rather than crash."""
    assert verify(SECRET, STAMP, "é" * 64, BODY, float(NOW)) is False


# --- check_secret -----------------------------------------------------------------------


def test_secret_bounds_are_16_and_256() -> None:
    assert (MIN_SECRET, MAX_SECRET) == (16, 256)


@pytest.mark.parametrize("length", [16, 17, 255, 256])
def test_check_secret_accepts_16_to_256_characters(length: int) -> None:
    secret = "k" * length
    assert check_secret(secret) == secret


@pytest.mark.parametrize("length", [0, 15, 257])
def test_check_secret_rejects_lengths_outside_16_to_256(length: int) -> None:
    with pytest.raises(ValueError, match=rf"16 to 256 characters, not {length}\b"):
        check_secret("k" * length)


def test_check_secret_counts_characters_not_bytes() -> None:
    sixteen = "é" * 16  # 32 bytes of UTF-8
    assert check_secret(sixteen) == sixteen
    with pytest.raises(ValueError, match="16 to 256"):
        check_secret("é" * 257)
