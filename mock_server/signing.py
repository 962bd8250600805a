"""HiAPI's callback signature: lowercase hex HMAC-SHA256 over `timestamp + "." + raw body`,
keyed with the signing key's UTF-8 bytes, sent as `X-HiAPI-Signature` beside
`X-HiAPI-Timestamp` (Unix seconds).

    >>> sign("whsec_0123456789abcdef", "1767225600", b'{"taskId":"x"}')[:16]
    '2f150a62b0e7849a'
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "MAX_SECRET",
    "MIN_SECRET",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE",
    "check_secret",
    "sign",
    "signature_headers",
    "verify",
]

SIGNATURE_HEADER = "X-HiAPI-Signature"
TIMESTAMP_HEADER = "X-HiAPI-Timestamp"
#: Receivers reject timestamps further than this from their clock (seconds).
TOLERANCE = 300
MIN_SECRET, MAX_SECRET = 16, 256


def check_secret(secret: str) -> str:
    """`secret` if it is a usable signing key (16 to 256 characters), else ValueError."""
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise ValueError(
            f"a webhook signing key must be {MIN_SECRET} to {MAX_SECRET} characters, "
            f"not {len(secret)}"
        )
    return secret


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature of `body` sent at `timestamp`."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    stamp = str(timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(secret, stamp, body)}


def verify(secret: str, timestamp: str, signature: str, body: bytes, now: float) -> bool:
    """Whether a delivery is authentic and fresh, as a receiver checks it."""
    # Only ASCII digits: int() would also read other scripts' digits, which no sender uses.
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > TOLERANCE:
        return False
    if not signature.isascii():
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
