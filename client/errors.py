"""Every error the client raises, under one root.

    HiAPIError
     ├── APIStatusError              an HTTP answer outside 2xx (status_code, error_code, ...)
     │    ├── InvalidRequestError          400, INVALID_REQUEST
     │    ├── AuthenticationError          401
     │    ├── InsufficientBalanceError     402 (the task was not created, not charged)
     │    ├── PermissionDeniedError        403
     │    ├── NotFoundError                404 (unknown task, or another key's)
     │    ├── IdempotencyProcessingError   409, IDEMPOTENCY_KEY_PROCESSING (retried)
     │    ├── IdempotencyMismatchError     422, IDEMPOTENCY_KEY_MISMATCH
     │    ├── RateLimitError               429 (retried)
     │    ├── ServiceUnavailableError      503, MODEL_UNAVAILABLE, STORAGE_UNAVAILABLE,
     │    │                                TASK_TIMEOUT (retried)
     │    └── InternalServerError          any other 5xx (500, 502, 504 retried)
     ├── MalformedResponseError      a 2xx answer that is not the documented envelope or task
     ├── APIConnectionError          the request did not get an answer (wraps httpx's error)
     │    └── APITimeoutError
     ├── TaskFailedError             `wait()`/`run()`: the task ended in `fail`
     ├── WaitTimeoutError            `wait()`/`run()`: the deadline passed first
     └── CallbackVerificationError   a callback delivery that must be rejected

The class is chosen from `error_code` first, then from the HTTP status: a 503 that says
`INVALID_REQUEST` is an `InvalidRequestError`. A status or code nobody documented gives a plain
`APIStatusError`. No httpx exception escapes the client: each is wrapped in an
`APIConnectionError` with the original as `__cause__`.

Every extra constructor argument is keyword-only with a default, so the errors pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Task

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "CallbackVerificationError",
    "HiAPIError",
    "IdempotencyMismatchError",
    "IdempotencyProcessingError",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "TaskFailedError",
    "WaitTimeoutError",
    "error_class",
]


class HiAPIError(Exception):
    """The root of every error this client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIStatusError(HiAPIError):
    """HiAPI (or something in front of it) answered outside 2xx.

    `body` is the decoded JSON answer, or its text when it was not JSON; `retry_after` is the
    wait the server asked for, in seconds, when it sent a readable `Retry-After`.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 0,
        error_code: str | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        return f"{self.status_code}{code}: {self.message}"


class InvalidRequestError(APIStatusError):
    """400 `INVALID_REQUEST`: bad body, callback URL, model, route or input."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, invalid or revoked."""


class InsufficientBalanceError(APIStatusError):
    """402: insufficient balance; the task was not created and not charged."""


class PermissionDeniedError(APIStatusError):
    """403: the key lacks permission."""


class NotFoundError(APIStatusError):
    """404: the task does not exist or belongs to another key (or an output expired)."""


class IdempotencyProcessingError(APIStatusError):
    """409 `IDEMPOTENCY_KEY_PROCESSING`: a request with the same key is still in flight."""


class IdempotencyMismatchError(APIStatusError):
    """422 `IDEMPOTENCY_KEY_MISMATCH`: the key was used before with a different body."""


class RateLimitError(APIStatusError):
    """429: too many requests for this key."""


class ServiceUnavailableError(APIStatusError):
    """503: the platform, a model or the storage is temporarily unavailable."""


class InternalServerError(APIStatusError):
    """Any 5xx other than 503."""


class MalformedResponseError(HiAPIError):
    """A 2xx answer (or a callback body) that is not what the contract describes."""

    def __init__(self, message: str, *, body: object = None) -> None:
        super().__init__(message)
        self.body = body


class APIConnectionError(HiAPIError):
    """No answer: the connection failed or broke. The httpx error is the `__cause__`."""


class APITimeoutError(APIConnectionError):
    """No answer within the configured timeout."""


class TaskFailedError(HiAPIError):
    """The task ended in `fail`; `error_code` and `message` come from its `error`."""

    def __init__(self, message: str, *, task: Task | None = None) -> None:
        super().__init__(message)
        self.task = task
        error = task.error if task is not None else None
        self.error_code: str | None = error.code if error is not None else None
        self.error_message: str | None = error.message if error is not None else None


class WaitTimeoutError(HiAPIError):
    """The task was not terminal when the deadline passed; `task` is the last one seen."""

    def __init__(
        self, message: str, *, task_id: str = "", timeout: float = 0.0, task: Task | None = None
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.timeout = timeout
        self.task = task


class CallbackVerificationError(HiAPIError):
    """A callback delivery failed verification (signature, timestamp or body): reject it."""


_BY_ERROR_CODE: dict[str, type[APIStatusError]] = {
    "INVALID_REQUEST": InvalidRequestError,
    "IDEMPOTENCY_KEY_PROCESSING": IdempotencyProcessingError,
    "IDEMPOTENCY_KEY_MISMATCH": IdempotencyMismatchError,
    "MODEL_UNAVAILABLE": ServiceUnavailableError,
    "STORAGE_UNAVAILABLE": ServiceUnavailableError,
    "TASK_TIMEOUT": ServiceUnavailableError,
    # Codes the fake sends where the live one is undocumented; they agree with the status.
    "UNAUTHORIZED": AuthenticationError,
    "INSUFFICIENT_BALANCE": InsufficientBalanceError,
    "FORBIDDEN": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RATE_LIMITED": RateLimitError,
    "SERVICE_UNAVAILABLE": ServiceUnavailableError,
    "INTERNAL_ERROR": InternalServerError,
}

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: IdempotencyProcessingError,
    422: IdempotencyMismatchError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_class(status_code: int, error_code: str | None) -> type[APIStatusError]:
    """The class for an error answer: `error_code` first, then the HTTP status."""
    by_code = _BY_ERROR_CODE.get(error_code or "")
    if by_code is not None:
        return by_code
    by_status = _BY_STATUS.get(status_code)
    if by_status is not None:
        return by_status
    return InternalServerError if status_code >= 500 else APIStatusError
