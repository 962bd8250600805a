"""The property tests' end-to-end flow against the live HiAPI, when a key is given.

Runs only with `HIAPI_API_KEY` set (`HIAPI_BASE_URL` optionally elsewhere than
`https://api.hiapi.ai`); without it the module is skipped, in CI too. Marked `live`: select
with `pytest -m live`, leave out with `-m "not live"`. Live tasks cost money, so:

- at most `BUDGET` creates per run, counted before each one is sent (a create that the API
  might accept counts), and the test fails rather than exceed it;
- the `live` Hypothesis profile: one example, no shrinking, no example database; Hypothesis
  replays a failing example once to report it, and that replay reuses the first answer
  instead of paying again;
- bodies are drawn from `openapi.yaml` like the offline tests', then made cheap and safe: a
  plain prompt, `1K`, no reference images (a drawn URL does not exist), no callback (nothing
  here is reachable from HiAPI).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from client import HiAPIClient, InvalidRequestError, NotFoundError, Task

from .conftest import EventLog, RecordingTransport, Sent
from .test_properties import (
    VALID,
    Create,
    expected_image,
    input_schema,
    invalid_creates,
    is_valid_callback,
    refused_before_sending,
    valid_creates,
)

if not os.environ.get("HIAPI_API_KEY", "").strip():
    pytest.skip(
        "HIAPI_API_KEY is not set: the live tests create billable HiAPI tasks and run only "
        "with a key (optionally HIAPI_BASE_URL)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.live

#: Creates (billable tasks) one run may make, at most.
BUDGET = 2
LIVE = settings(settings.get_profile("live"))
#: Live Nano-Banana-Pro at 1K: 15-20 s, p95 25 s (third-party measurements).
WAIT_TIMEOUT = 300.0
PROMPTS = ("A luxury product photo of a banana on black marble", "A ripe banana on a white plate")
T = TypeVar("T")


class Budget:
    """Counts creates; fails the test instead of making the one that would exceed `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        #: Whether the last `create()` was sent (False: a replay answered from memory).
        self.fresh = False
        self._answers: dict[str, tuple[bool, Any]] = {}

    def create(self, create: Create, send: Callable[[], T]) -> T:
        """`send()` once per distinct create: a replay of the same create gets the first
        answer back (or its error raised again)."""
        key = repr(create)
        self.fresh = key not in self._answers
        if self.fresh:
            if self.spent >= self.limit:
                pytest.fail(f"live task budget exhausted: {self.limit} creates per run")
            self.spent += 1
            try:
                self._answers[key] = (True, send())
            except Exception as exc:
                self._answers[key] = (False, exc)
        ok, answer = self._answers[key]
        if not ok:
            raise answer
        result: T = answer
        return result


BUDGET_OF_THIS_RUN = Budget(BUDGET)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[HiAPIClient, EventLog]]:
    log = EventLog()
    transport = RecordingTransport(httpx.HTTPTransport(), log)
    with HiAPIClient(transport=transport) as client:  # key and base URL from the environment
        yield client, log


@st.composite
def live_creates(draw: st.DrawFn) -> Create:
    drawn = draw(valid_creates())
    fields = input_schema(drawn.model)["properties"]
    params = {
        "prompt": draw(st.sampled_from(PROMPTS)),
        "image_input": [],
        "aspect_ratio": drawn.input.get("aspect_ratio", fields["aspect_ratio"]["default"]),
        "resolution": "1K",
        "output_format": drawn.input.get("output_format", fields["output_format"]["default"]),
    }
    return Create(drawn.model, params, None, drawn.route, drawn.idempotency_key)


@st.composite
def live_invalid_creates(draw: st.DrawFn) -> Create:
    """An invalid body that, were HiAPI to accept it all the same, sends nothing anywhere:
    a well-formed callback and reference URLs are left out (the rest stays invalid)."""
    drawn = draw(invalid_creates())
    params = dict(drawn.input)
    if isinstance(params.get("image_input"), list):
        params["image_input"] = []
    callback = None if is_valid_callback(drawn.callback) else drawn.callback
    body: dict[str, Any] = {"model": drawn.model, "input": params}
    if callback is not None:
        body["callback"] = callback
    if drawn.route is not None:
        body["route"] = drawn.route
    assume(not VALID.is_valid(body))
    return Create(drawn.model, params, callback, drawn.route, None)


def posts(log: EventLog) -> int:
    return sum(1 for e in log.events if isinstance(e, Sent) and e.method == "POST")


@LIVE
@given(create=live_creates())
def test_live_a_valid_body_is_accepted_and_its_task_finishes(
    live: tuple[HiAPIClient, EventLog], create: Create
) -> None:
    client, log = live
    log.reset()

    def run() -> Task:
        return client.run(
            create.model,
            create.input,
            route=create.route,
            idempotency_key=create.idempotency_key,
            timeout=WAIT_TIMEOUT,
        )

    task = BUDGET_OF_THIS_RUN.create(create, run)

    assert task.succeeded and task.output
    assert task == client.retrieve(task.task_id)
    size, image_format = expected_image(create)
    with Image.open(io.BytesIO(client.download(task.output[0]))) as image:
        if create.input["aspect_ratio"] == "auto":  # the live choice is not documented
            sizes = input_schema(create.model)["x-output-sizes"]["sizes"]
            assert list(image.size) in [by_res["1K"] for by_res in sizes.values()]
        else:
            assert image.size == size
        assert image.format == image_format


@LIVE
@given(create=live_invalid_creates())
def test_live_an_invalid_body_raises_invalid_request_error_after_one_post(
    live: tuple[HiAPIClient, EventLog], create: Create
) -> None:
    client, log = live
    log.reset()
    if refused_before_sending(create):
        return  # nothing would reach HiAPI: the offline tests cover it

    def send() -> str:
        return client.create(
            create.model, create.input, callback=create.callback, route=create.route
        )

    with pytest.raises(InvalidRequestError):
        BUDGET_OF_THIS_RUN.create(create, send)
    assert posts(log) == (1 if BUDGET_OF_THIS_RUN.fresh else 0)  # never retried


def test_live_an_unknown_task_is_not_found(live: tuple[HiAPIClient, EventLog]) -> None:
    client, _ = live
    with pytest.raises(NotFoundError):
        client.retrieve("tk-hiapi-00000000000000000000000000")
