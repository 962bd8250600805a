"""`HiAPIClient`: the shared plans carried out with blocking I/O (`httpx.Client`)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, overload

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
from ._types import NOT_GIVEN, Clock, NotGiven, Sleep
from .models import Task, TaskOutput, TaskPage

__all__ = ["HiAPIClient"]


class HiAPIClient:
    """A blocking client for HiAPI's unified async task API.

    ::

        with HiAPIClient() as hiapi:  # HIAPI_API_KEY from the environment
            task = hiapi.run("Nano-Banana-Pro", {"prompt": "a banana on black marble"})
            png = hiapi.download(task.output[0])

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
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
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
        self._http = httpx.Client(
            transport=transport,
            timeout=resolve_timeout(timeout),
            headers={"User-Agent": user_agent},
        )

    @property
    def base_url(self) -> str:
        """The API's base URL, without `/v1`."""
        return self._core.base_url

    def __repr__(self) -> str:
        return f"HiAPIClient(base_url={self.base_url!r})"

    def __enter__(self) -> HiAPIClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def create(
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
        return self._run(self._core.create(spec))

    def retrieve(self, task_id: str) -> Task:
        """The task as it is now."""
        return self._run(self._core.retrieve(task_id))

    def list(self, page: int = 1, size: int = 20) -> TaskPage:
        """One page of the key's tasks, newest first (`size` 1 to 100)."""
        return self._run(self._core.list(page, size))

    def iter_tasks(self, size: int = 100, *, max_pages: int = 10_000) -> Iterator[Task]:
        """Every task of the key, page after page; see `Pager` for when it stops."""
        return self._iter_tasks(self._core.pager(size, max_pages))

    def _iter_tasks(self, pager: Pager) -> Iterator[Task]:
        while (page := pager.next_page()) is not None:
            yield from pager.accept(self.list(page, pager.size))

    def wait(
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
        return self._run(plan)

    def run(
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
        task_id = self.create(
            model, input, callback=callback, route=route, idempotency_key=idempotency_key
        )
        return self.wait(
            task_id,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )

    @overload
    def download(self, output_or_url: TaskOutput | str, path: None = None) -> bytes: ...
    @overload
    def download(self, output_or_url: TaskOutput | str, path: str | os.PathLike[str]) -> Path: ...
    def download(
        self, output_or_url: TaskOutput | str, path: str | os.PathLike[str] | None = None
    ) -> bytes | Path:
        """An output's bytes, or, given `path`, the output streamed into that file.

        The file appears complete or not at all (written beside it, then renamed). The API key
        is sent only when the URL is on the API's own origin.
        """
        if path is None:
            return self._run(self._core.send(self._core.download_spec(output_or_url, None))).content
        target = Path(path)
        partial = _wire.partial_path(target)
        try:
            self._run(self._core.send(self._core.download_spec(output_or_url, partial)))
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    # -- carrying out a plan ----------------------------------------------------------------

    def _run(self, plan: Plan[T]) -> T:
        try:
            step = next(plan)
            while True:
                step = plan.send(self._execute(step))
        except StopIteration as done:
            result: T = done.value
            return result
        finally:
            plan.close()

    def _execute(self, step: Step) -> Outcome:
        if isinstance(step, Pause):
            self._sleep(step.seconds)
            return None
        try:
            return self._send(step.spec)
        except httpx.HTTPError as exc:
            return exc

    def _send(self, spec: _wire.RequestSpec) -> httpx.Response:
        request = self._http.build_request(
            spec.method, spec.url, params=spec.params, json=spec.json, headers=spec.headers
        )
        response = self._http.send(request, stream=True, follow_redirects=spec.follow_redirects)
        try:
            if spec.sink is not None and response.is_success:
                with spec.sink.open("wb") as file:
                    for chunk in response.iter_bytes():
                        file.write(chunk)
            else:
                response.read()
        finally:
            response.close()
        return response
