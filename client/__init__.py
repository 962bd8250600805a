"""A reference client for HiAPI's unified async task API.

::

    from client import HiAPIClient

    with HiAPIClient() as hiapi:  # api_key from HIAPI_API_KEY
        task_id = hiapi.create("Nano-Banana-Pro", {"prompt": "a banana on black marble"})
        task = hiapi.wait(task_id)
        image = hiapi.download(task.output[0])

`AsyncHiAPIClient` has the same methods, awaited. Callbacks: `verify_callback` checks one
delivery, `callback_app` is a ready receiver. Every error is a `HiAPIError` (see `client.errors`).
"""

from __future__ import annotations

from ._async import AsyncHiAPIClient
from ._sync import HiAPIClient
from ._version import __version__
from .callbacks import parse_callback, sign_callback, verify_callback
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    CallbackVerificationError,
    HiAPIError,
    IdempotencyMismatchError,
    IdempotencyProcessingError,
    InsufficientBalanceError,
    InternalServerError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    TaskFailedError,
    WaitTimeoutError,
)
from .models import Task, TaskError, TaskOutput, TaskPage, TaskStatus, is_terminal
from .receiver import CallbackReceiver, callback_app

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncHiAPIClient",
    "AuthenticationError",
    "CallbackReceiver",
    "CallbackVerificationError",
    "HiAPIClient",
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
    "Task",
    "TaskError",
    "TaskFailedError",
    "TaskOutput",
    "TaskPage",
    "TaskStatus",
    "WaitTimeoutError",
    "__version__",
    "callback_app",
    "is_terminal",
    "parse_callback",
    "sign_callback",
    "verify_callback",
]
