"""`AsyncHiAPIClient`: the shared plans carried out with `await` (`httpx.AsyncClient`)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, overload

import anyio
import httpx

from . import _wire
from ._core import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_USER_AGENT,
    Core,
    Outcome,
    Pause,
    Plan,
    Step,
    T,
    resolve_timeout,
)
from ._retry import Pager
from ._types import NOT_GIVEN, AsyncSleep, Clock, NotGiven
from .models import Task, TaskOutput, TaskPage

__all__ = ["AsyncHiAPIClient"]


class AsyncHiAPIClient:
    """The asynchronous twin of `HiAPIClient`: same arguments, same methods, awaited.

    ::

        async with AsyncHiAPIClient() as hiapi:
            task = await hiapi.run("Nano-Banana-Pro", {"prompt": "a banana on black marble"})
            png = await hiapi.download(task.output[0])

    `base_url` defaults to `HIAPI_BASE_URL`, else `https://api.hiapi.ai` (with or without
    `/v1`); `api_key` to `HIAPI_API_KEY`. `timeout` is per request (`None`: none). Retryable
    failures are retried up to `max_retries` times. `auto_idempotency_key` (on by default)
    gives every create an `Idempotency-Key`, so a create is retried safely after a network
    error or a 5xx. `transport`, `clock`, `sleep` and `rng` are seams for tests.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: AsyncSleep = anyio.sleep,
        rng: random.Random | None = None,
        auto_idempotency_key: bool = True,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self._core = Core(
            base_url=base_url,
            api_key=api_key,
            max_retries=max_retries,
            clock=clock,
            rng=rng,
            auto_idempotency_key=auto_idempotency_key,
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=resolve_timeout(timeout),
            headers={"User-Agent": user_agent},
        )

    @property
    def base_url(self) -> str:
        """The API's base URL, without `/v1`."""
        return self._core.base_url

    def __repr__(self) -> str:
        return f"AsyncHiAPIClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> AsyncHiAPIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def create(
        self,
        model: str,
        input: Mapping[str, Any],
        *,
        callback: str | Mapping[str, Any] | None = None,
        route: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Submit a task; returns its id. `callback` is a URL (or a `{"url", "when"}` object)."""
        spec = self._core.create_spec(
            model, input, callback=callback, route=route, idempotency_key=idempotency_key
        )
        return await self._run(self._core.create(spec))

    async def retrieve(self, task_id: str) -> Task:
        """The task as it is now."""
        return await self._run(self._core.retrieve(task_id))

    async def list(self, page: int = 1, size: int = 20) -> TaskPage:
        """One page of the key's tasks, newest first (`size` 1 to 100)."""
        return await self._run(self._core.list(page, size))

    def iter_tasks(self, size: int = 100, *, max_pages: int = 10_000) -> AsyncIterator[Task]:
        """Every task of the key, page after page; see `Pager` for when it stops."""
        return self._iter_tasks(self._core.pager(size, max_pages))

    async def _iter_tasks(self, pager: Pager) -> AsyncIterator[Task]:
        while (page := pager.next_page()) is not None:
            for task in pager.accept(await self.list(page, pager.size)):
                yield task

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = 300.0,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
    ) -> Task:
        """Poll until `success` (returns the task) or `fail` (raises `TaskFailedError`).

        Intervals start at `poll_interval` and grow 1.5 times each poll up to `max_poll_interval`,
        never past the deadline, and never shorter than a `Retry-After` the server sends;
        `WaitTimeoutError` once `timeout` seconds pass first (`None`: no limit).
        """
        plan = self._core.wait(
            task_id,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        return await self._run(plan)

    async def run(
        self,
        model: str,
        input: Mapping[str, Any],
        *,
        callback: str | Mapping[str, Any] | None = None,
        route: str | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = 300.0,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
    ) -> Task:
        """`create` then `wait`: the finished task, or `TaskFailedError`/`WaitTimeoutError`."""
        task_id = await self.create(
            model, input, callback=callback, route=route, idempotency_key=idempotency_key
        )
        return await self.wait(
            task_id,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )

    @overload
    async def download(self, output_or_url: TaskOutput | str, path: None = None) -> bytes: ...
    @overload
    async def download(
        self, output_or_url: TaskOutput | str, path: str | os.PathLike[str]
    ) -> Path: ...
    async def download(
        self, output_or_url: TaskOutput | str, path: str | os.PathLike[str] | None = None
    ) -> bytes | Path:
        """An output's bytes, or, given `path`, the output streamed into that file.

        The file appears complete or not at all (written beside it, then renamed). The API key
        is sent only when the URL is on the API's own origin.
        """
        if path is None:
            response = await self._run(
                self._core.send(self._core.download_spec(output_or_url, None))
            )
            return response.content
        target = Path(path)
        partial = _wire.partial_path(target)
        try:
            await self._run(self._core.send(self._core.download_spec(output_or_url, partial)))
            await anyio.Path(partial).replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)  # must run even when cancelled: no await here
            raise
        return target

    # -- carrying out a plan ----------------------------------------------------------------

    async def _run(self, plan: Plan[T]) -> T:
        try:
            step = next(plan)
            while True:
                step = plan.send(await self._execute(step))
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            plan.close()

    async def _execute(self, step: Step) -> Outcome:
        if isinstance(step, Pause):
            await self._sleep(step.seconds)
            return None
        try:
            return await self._send(step.spec)
        except httpx.HTTPError as exc:
            return exc

    async def _send(self, spec: _wire.RequestSpec) -> httpx.Response:
        request = self._http.build_request(
            spec.method, spec.url, params=spec.params, json=spec.json, headers=spec.headers
        )
        response = await self._http.send(
            request, stream=True, follow_redirects=spec.follow_redirects
        )
        try:
            if spec.sink is not None and response.is_success:
                async with await anyio.open_file(spec.sink, "wb") as file:
                    async for chunk in response.aiter_bytes():
                        await file.write(chunk)
            else:
                await response.aread()
        finally:
            await response.aclose()
        return response
