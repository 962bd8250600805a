"""A ready callback receiver: verify, acknowledge at once, handle each task exactly once.

::

    def on_task(task: Task) -> None:
        print(task.task_id, task.status)

    app = callback_app(on_task, secret=os.environ["HIAPI_WEBHOOK_SECRET"])
    # mount it anywhere: Starlette(routes=[Mount("/hiapi/callback", app)]), or serve it alone

What it answers:

- `401` when a `secret` is set and the signature or timestamp does not verify;
- `400` when the body is not a task, `413` when it is over `max_body_bytes`;
- `200` otherwise, at once; the handler runs afterwards, off the request path (a Starlette
  background task; a plain function runs in a worker thread, a coroutine function on the loop).

Deliveries are at least once and may be concurrent, so the handler runs once per `taskId`: a
copy that arrives while the first is being handled, or after it was handled, is only counted in
`duplicates`. The claim is taken on the event loop with no `await` between the check and the
mark, so two copies arriving together cannot both run it.

A handler error cannot turn into a 5xx: the delivery was acknowledged before the handler ran.
This is deliberate: answering 5xx would make HiAPI redeliver (up to 3 more times, over about 26
minutes) into the same error. Instead the error is logged and kept in `errors`, and the task id is
released, so a later redelivery of that task gets another try; recover the rest with
`HiAPIClient.retrieve`. Deduplication is per process and remembers the last `max_remembered`
task ids: behind several workers, deduplicate in shared storage too.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._types import Clock
from .callbacks import DEFAULT_TOLERANCE, check_signature, parse_callback
from .errors import CallbackVerificationError
from .models import Task

__all__ = ["CallbackReceiver", "Handler", "callback_app"]

#: What the receiver calls with each new task: a function or a coroutine function.
Handler: TypeAlias = Callable[[Task], Awaitable[None] | None]
logger = logging.getLogger("hiapi.callbacks")


class CallbackReceiver:
    """The state behind `callback_app`: `app`, what was handled, and a way to wait for it.

    `handled` holds the tasks whose handler returned, `errors` the `(task, exception)` pairs of
    those that raised (both the most recent `max_remembered`). `await wait_idle()` (on the app's
    event loop) returns once no handler is running.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        secret: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        clock: Clock = time.time,
        max_remembered: int = 100_000,
        max_body_bytes: int = 1 << 20,
    ) -> None:
        self._handler = handler
        self._secret = secret
        self._tolerance = tolerance
        self._clock = clock
        self._max_remembered = max_remembered
        self._max_body_bytes = max_body_bytes
        self._idle: anyio.Event | None = None
        self.reset()
        self.app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["POST"])])
        self.app.state.receiver = self

    def reset(self) -> None:
        """Forget every task id, result and count."""
        self.handled: deque[Task] = deque(maxlen=self._max_remembered)
        self.errors: deque[tuple[Task, Exception]] = deque(maxlen=self._max_remembered)
        self.duplicates = 0
        self._done: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()

    @property
    def idle(self) -> bool:
        """No handler is running."""
        return not self._in_flight

    async def wait_idle(self) -> None:
        """Return once no handler is running (call it on the app's event loop)."""
        while self._in_flight:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    async def _endpoint(self, request: Request) -> Response:
        try:
            body = await _read_body(request, self._max_body_bytes)
        except ClientDisconnect:
            # The sender gave up mid-body (it will retry); nobody is left to answer.
            return Response(status_code=400)
        if body is None:
            return _error(413, f"body over {self._max_body_bytes} bytes")
        if self._secret:
            try:
                check_signature(
                    body,
                    request.headers,
                    self._secret,
                    tolerance=self._tolerance,
                    now=self._clock(),
                )
            except CallbackVerificationError as exc:
                return _error(401, str(exc))
        try:
            task = parse_callback(body)
        except CallbackVerificationError as exc:
            return _error(400, str(exc))
        return JSONResponse({"received": True}, background=BackgroundTask(self._deliver, task))

    async def _deliver(self, task: Task) -> None:
        if not self._claim(task.task_id):
            self.duplicates += 1
            return
        try:
            await self._call(task)
        except Exception as exc:
            logger.exception("callback handler failed for task %s", task.task_id)
            self.errors.append((task, exc))
        else:
            self._remember(task.task_id)
            self.handled.append(task)
        finally:
            self._release(task.task_id)

    async def _call(self, task: Task) -> None:
        if inspect.iscoroutinefunction(self._handler):
            await self._handler(task)
            return
        result = await anyio.to_thread.run_sync(self._handler, task)
        if inspect.isawaitable(result):
            await result

    def _claim(self, task_id: str) -> bool:
        if task_id in self._done or task_id in self._in_flight:
            return False
        self._in_flight.add(task_id)
        return True

    def _remember(self, task_id: str) -> None:
        self._done[task_id] = None
        while len(self._done) > self._max_remembered:
            self._done.popitem(last=False)

    def _release(self, task_id: str) -> None:
        self._in_flight.discard(task_id)
        if not self._in_flight and self._idle is not None:
            self._idle.set()
            self._idle = None


def callback_app(
    handler: Handler,
    *,
    secret: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    clock: Clock = time.time,
) -> Starlette:
    """A Starlette app receiving HiAPI callbacks; its `CallbackReceiver` is `app.state.receiver`.

    Without `secret`, deliveries are not verified (signing is optional on HiAPI's side): set it
    whenever the account has a webhook signing key.
    """
    return CallbackReceiver(handler, secret=secret, tolerance=tolerance, clock=clock).app


async def _read_body(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"received": False, "error": message}, status_code=status)
