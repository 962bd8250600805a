"""Receiving HiAPI's callbacks: checking their signature, and a ready Starlette receiver.

HiAPI signs a delivery, when the account has a webhook signing key, with two headers:
`X-HiAPI-Timestamp` (Unix seconds) and `X-HiAPI-Signature`, the lowercase hex HMAC-SHA256 of
`timestamp + "." + raw body` keyed with the signing key's UTF-8 bytes. This is not the Standard
Webhooks scheme; the `standardwebhooks` package does not verify it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping

from .errors import CallbackVerificationError, HiAPIError
from .models import Task

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "check_signature",
    "parse_callback",
    "sign_callback",
    "verify_callback",
]

TIMESTAMP_HEADER = "X-HiAPI-Timestamp"
SIGNATURE_HEADER = "X-HiAPI-Signature"
DEFAULT_TOLERANCE = 300
_TIMESTAMP = re.compile(r"[0-9]{1,15}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)


def sign_callback(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The two headers HiAPI would send with `body`; for testing your own receiver.

    ::

        headers = sign_callback(b'{"taskId": "tk-hiapi-..."}', "my-signing-key")
    """
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: _signature(secret, stamp, bytes(body))}


def verify_callback(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Task:
    """Check a delivery's signature and freshness, then parse its task.

    `body` must be the raw bytes received, before any JSON decoding; header names are matched
    whatever their case. Raises `CallbackVerificationError` for a missing, malformed, stale
    (more than `tolerance` seconds from `now`, either way) or wrong signature, and for a body
    that is not a task. The comparison runs in constant time.
    """
    check_signature(body, headers, secret, tolerance=tolerance, now=now)
    return parse_callback(body)


def check_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """`verify_callback` without the parsing: raises `CallbackVerificationError` or returns."""
    if not secret:
        raise ValueError("secret must be the account's non-empty webhook signing key")
    stamp, given = _signature_headers(headers)
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance:
        raise CallbackVerificationError(
            f"timestamp {stamp} is more than {tolerance} s away from now ({int(current)})"
        )
    expected = _signature(secret, stamp, bytes(body))
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("ascii")):
        raise CallbackVerificationError("signature does not match the body and the secret")


def parse_callback(body: bytes) -> Task:
    """The task a callback body carries (no envelope); `CallbackVerificationError` if none."""
    try:
        return Task.from_dict(json.loads(body))
    except (ValueError, RecursionError) as exc:
        raise CallbackVerificationError(f"callback body is not JSON: {exc}") from exc
    except HiAPIError as exc:
        raise CallbackVerificationError(f"callback body is not a task: {exc}") from exc


def _signature_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    lowered = {str(name).lower(): value for name, value in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    given = lowered.get(SIGNATURE_HEADER.lower())
    if stamp is None or given is None:
        raise CallbackVerificationError(
            f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}: is signing on for this account?"
        )
    stamp, given = str(stamp).strip(), str(given).strip().lower()
    if not _TIMESTAMP.fullmatch(stamp):
        raise CallbackVerificationError(f"{TIMESTAMP_HEADER} is not Unix seconds: {stamp!r}")
    if not _SIGNATURE.fullmatch(given):
        raise CallbackVerificationError(f"{SIGNATURE_HEADER} is not 64 hex digits")
    return stamp, given


def _signature(secret: str, stamp: str, body: bytes) -> str:
    message = stamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
