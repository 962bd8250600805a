"""The fake's errors. Each carries the HTTP status, HiAPI's `error_code` and a message; the app
turns any of them into HiAPI's error envelope in one handler.

    MockError
    ├── InvalidRequest          400 INVALID_REQUEST
    ├── Unauthorized            401 UNAUTHORIZED
    ├── InsufficientBalance     402 INSUFFICIENT_BALANCE
    ├── Forbidden               403 FORBIDDEN
    ├── NotFound                404 NOT_FOUND
    ├── MethodNotAllowed        405 METHOD_NOT_ALLOWED
    ├── IdempotencyProcessing   409 IDEMPOTENCY_KEY_PROCESSING (Retry-After)
    ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE
    ├── UnsupportedMediaType    415 UNSUPPORTED_MEDIA_TYPE
    ├── IdempotencyMismatch     422 IDEMPOTENCY_KEY_MISMATCH
    ├── RateLimited             429 RATE_LIMITED (Retry-After)
    ├── ServiceUnavailable      503 SERVICE_UNAVAILABLE or MODEL_UNAVAILABLE... (Retry-After)
    └── IllegalTransition       a task was asked to move against the status table (a bug, 500)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "Forbidden",
    "IdempotencyMismatch",
    "IdempotencyProcessing",
    "IllegalTransition",
    "InsufficientBalance",
    "InvalidRequest",
    "MethodNotAllowed",
    "MockError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_for_status",
]


class MockError(Exception):
    """Root of the fake's errors: an HTTP status, an `error_code` and a message."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code or self.default_code
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class InvalidRequest(MockError):
    status = 400
    default_code = "INVALID_REQUEST"


class Unauthorized(MockError):
    status = 401
    default_code = "UNAUTHORIZED"


class InsufficientBalance(MockError):
    status = 402
    default_code = "INSUFFICIENT_BALANCE"


class Forbidden(MockError):
    status = 403
    default_code = "FORBIDDEN"


class NotFound(MockError):
    status = 404
    default_code = "NOT_FOUND"


class MethodNotAllowed(MockError):
    status = 405
    default_code = "METHOD_NOT_ALLOWED"


class IdempotencyProcessing(MockError):
    status = 409
    default_code = "IDEMPOTENCY_KEY_PROCESSING"


class PayloadTooLarge(MockError):
    status = 413
    default_code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(MockError):
    status = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"


class IdempotencyMismatch(MockError):
    status = 422
    default_code = "IDEMPOTENCY_KEY_MISMATCH"


class RateLimited(MockError):
    status = 429
    default_code = "RATE_LIMITED"


class ServiceUnavailable(MockError):
    status = 503
    default_code = "SERVICE_UNAVAILABLE"


class IllegalTransition(MockError):
    """A task was asked to move in a way the status table forbids."""


def error_for_status(
    status: int, message: str, *, error_code: str | None = None, retry_after: int | None = None
) -> MockError:
    """The error of the class that answers `status` (a staged fault, for instance)."""
    for cls in _BY_STATUS:
        if cls.status == status:
            return cls(message, error_code=error_code, retry_after=retry_after)
    return MockError(message, error_code=error_code, retry_after=retry_after)


_BY_STATUS: tuple[type[MockError], ...] = (
    InvalidRequest,
    Unauthorized,
    InsufficientBalance,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    IdempotencyProcessing,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyMismatch,
    RateLimited,
    ServiceUnavailable,
)
