"""Properties of the reference client against the fake, with bodies drawn from `openapi.yaml`.

- A create body the contract accepts is accepted and its task finishes: `run()` reaches
  `success`, the output downloads, its pixel size is the one `x-output-sizes` promises, and its
  callback carries a signature `verify_callback` accepts.
- A body the contract refuses raises `InvalidRequestError` after exactly one POST: never retried,
  no task made. (Two refusals happen before sending, as documented: an empty model, a
  `callback` inside `input`; they raise `ValueError` and send nothing.)
- An Idempotency-Key the client accepts reaches the server as it was given.
- `verify_callback` accepts whatever the fake signs, and refuses any single-byte change.

Bodies come from Schemathesis (`hypothesis-jsonschema` does not read OpenAPI 3.1); a test-side
`jsonschema` validator of `CreateTaskRequest` is the oracle of what is valid.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode

from client import (
    CallbackVerificationError,
    InvalidRequestError,
    Task,
    verify_callback,
)
from mock_server.receiver import CallbackReceiver as RawReceiver
from mock_server.signing import signature_headers

from .conftest import (
    HTTP_TIMEOUT,
    WEBHOOK_SECRET,
    Harness,
    Slept,
    replace_url,
    scaled_examples,
)

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
CREATE_REQUEST = SCHEMAS["CreateTaskRequest"]
VALID = jsonschema.Draft202012Validator(
    {"$ref": "#/components/schemas/CreateTaskRequest", "components": DOCUMENT["components"]},
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
CREATE = SCHEMA["/v1/tasks"]["POST"]
POSITIVE_CASES = CREATE.as_strategy()
#: Headers fixed, so that every negative case is negative in its body.
NEGATIVE_CASES = CREATE.as_strategy(
    GenerationMode.NEGATIVE,
    headers={"Authorization": "Bearer sk-test-drawn", "Idempotency-Key": "drawn"},
)
BODY_FIELDS = frozenset({"model", "input", "callback", "route"})
#: A callback URL on this machine where nobody listens (the discard port).
NOWHERE = "http://127.0.0.1:9/hooks"
#: Generous for the fake's clock: a task takes 13 s of it.
WAIT = {"timeout": 600.0}

pytestmark = pytest.mark.server


def _component(ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = SCHEMAS[ref.rsplit("/", 1)[-1]]
    return schema


def request_schema(model: str) -> dict[str, Any]:
    """The request schema the discriminator picks for a model spelling."""
    return _component(CREATE_REQUEST["discriminator"]["mapping"][model])


def input_schema(model: str) -> dict[str, Any]:
    return _component(request_schema(model)["properties"]["input"]["$ref"])


@dataclass(frozen=True, slots=True)
class Create:
    """One `create()` call: the body's parts as the client's arguments take them."""

    model: str
    input: Mapping[str, Any]
    callback: Mapping[str, Any] | str | None
    route: str | None
    idempotency_key: str | None

    @classmethod
    def of(cls, body: Mapping[str, Any], key: str | None = None) -> Create:
        return cls(body["model"], body["input"], body.get("callback"), body.get("route"), key)


def _client_accepts_key(key: str | None) -> bool:
    # The client takes printable ASCII keys only (documented); others fall back to automatic.
    # (Keys with surrounding spaces have a test of their own below.)
    return key is not None and key.isascii() and key.isprintable() and key == key.strip()


@st.composite
def valid_creates(draw: st.DrawFn) -> Create:
    case = draw(POSITIVE_CASES)
    assert isinstance(case.body, dict)
    body: dict[str, Any] = dict(case.body)
    # Schemathesis folds the discriminator's two spellings into one; draw among all of them.
    body["model"] = draw(
        st.sampled_from(request_schema(body["model"])["properties"]["model"]["enum"])
    )
    # A prompt directive (`[mock:fail]`, ...) would stage a fault: not what is tested here.
    assume("[mock:" not in body["input"]["prompt"])
    assert VALID.is_valid(body), body
    headers: Mapping[str, str] = case.headers or {}
    key = headers.get("Idempotency-Key")
    return Create.of(body, key if _client_accepts_key(key) else None)


def _expressible(body: object) -> bool:
    """Whether `create()`'s typed arguments can say this body at all."""
    return (
        isinstance(body, dict)
        and set(body) <= BODY_FIELDS
        and isinstance(body.get("model"), str)
        and isinstance(body.get("input"), dict)
        and isinstance(body.get("callback", {}), dict | str)
        and isinstance(body.get("route", ""), str)
    )


@st.composite
def invalid_creates(draw: st.DrawFn) -> Create:
    case = draw(NEGATIVE_CASES)
    assume(_expressible(case.body))
    assert isinstance(case.body, dict)
    body: dict[str, Any] = dict(case.body)
    # Schemathesis' negation can land on a valid body (e.g. the other spelling of `model`).
    assume(not VALID.is_valid(body))
    if is_valid_callback(body.get("callback")):
        # Not what is wrong with this body: point it nowhere, should the fake accept it.
        body["callback"] = replace_url(body["callback"], NOWHERE)
    return Create.of(body)


def is_valid_callback(callback: object) -> bool:
    body = {"model": "Nano-Banana-Pro", "input": {"prompt": "x"}, "callback": callback}
    return bool(VALID.is_valid(body))


def refused_before_sending(create: Create) -> bool:
    """The checks `create()` documents doing itself (`ValueError`, nothing sent)."""
    return create.model == "" or "callback" in create.input


def expected_image(create: Create) -> tuple[tuple[int, int], str]:
    """(width, height) and format of the output, from `x-output-sizes` and the defaults."""
    schema = input_schema(create.model)
    fields = schema["properties"]
    ratio = create.input.get("aspect_ratio", fields["aspect_ratio"]["default"])
    resolution = create.input.get("resolution", fields["resolution"]["default"])
    output_format = create.input.get("output_format", fields["output_format"]["default"])
    if ratio == "auto":
        # openapi.yaml: the first reference's nearest ratio when readable, else 1:1; a drawn
        # reference is a remote URL, which the offline fake never reads.
        ratio = "1:1"
    width, height = schema["x-output-sizes"]["sizes"][ratio][resolution]
    return (width, height), {"png": "PNG", "jpg": "JPEG"}[output_format]


@pytest.fixture(scope="module")
def raw_receiver() -> Iterator[RawReceiver]:
    """Records exactly what the fake delivers (bytes and headers)."""
    with RawReceiver() as receiver:
        yield receiver


def _call(harness: Harness, create: Create, *, with_keys: bool = True) -> str:
    api = harness.api if with_keys else harness.api_without_keys
    return api.create(
        create.model,
        create.input,
        callback=create.callback,
        route=create.route,
        idempotency_key=create.idempotency_key,
    )


@settings(
    max_examples=scaled_examples(0.5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(create=valid_creates())
def test_a_valid_body_is_accepted_and_its_task_finishes(
    harness: Harness, raw_receiver: RawReceiver, create: Create
) -> None:
    harness.reset()
    raw_receiver.reset()
    if isinstance(create.callback, Mapping):
        # The fake really delivers: point the drawn callback at a local receiver.
        url = raw_receiver.url_for(f"/hooks/{harness.examples}")
        create = Create(create.model, create.input, replace_url(create.callback, url),
                        create.route, create.idempotency_key)  # fmt: skip
    task = harness.api.run(
        create.model,
        create.input,
        callback=create.callback,
        route=create.route,
        idempotency_key=create.idempotency_key,
        **WAIT,
    )

    assert task.succeeded
    assert task == harness.fake.task(task.task_id)
    assert harness.posts() == 1
    [output] = task.output
    size, image_format = expected_image(create)
    with Image.open(io.BytesIO(harness.api.download(output))) as image:
        assert (image.size, image.format) == (size, image_format)
    if create.callback is not None:
        [delivery] = raw_receiver.wait_for(1, timeout=HTTP_TIMEOUT)
        now = harness.fake.clock.now()
        assert verify_callback(delivery.body, delivery.headers, WEBHOOK_SECRET, now=now) == task
    harness.fake.backend.callbacks.wait_idle(HTTP_TIMEOUT)
    assert len(raw_receiver.received) == (create.callback is not None)


@settings(
    max_examples=scaled_examples(0.3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(create=invalid_creates(), with_keys=st.booleans())
def test_an_invalid_body_raises_invalid_request_error_and_is_never_retried(
    harness: Harness, create: Create, with_keys: bool
) -> None:
    harness.reset()
    if refused_before_sending(create):
        with pytest.raises(ValueError):
            _call(harness, create, with_keys=with_keys)
        assert harness.posts() == 0
        return

    with pytest.raises(InvalidRequestError) as refused:
        _call(harness, create, with_keys=with_keys)

    assert (refused.value.status_code, refused.value.error_code) == (400, "INVALID_REQUEST")
    assert harness.posts() == 1
    assert not any(isinstance(event, Slept) for event in harness.log.events)
    assert harness.fake.tasks() == set()


PRINTABLE_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@example(key=" ")
@example(key="key-with-a-trailing-space ")
@given(key=st.text(PRINTABLE_ASCII, min_size=1, max_size=255))
def test_an_idempotency_key_the_client_accepts_reaches_the_server(
    harness: Harness, key: str
) -> None:
    harness.reset()
    body = {"prompt": "A luxury product photo of a banana on black marble"}
    try:
        task_id = harness.api.create("Nano-Banana-Pro", body, idempotency_key=key)
    except ValueError:
        assert harness.posts() == 0, "refused a key, but only after sending it"
        return
    [entry] = harness.fake.backend.journal.entries(method="POST", path="/v1/tasks")
    assert entry.headers.get("idempotency-key") == key
    assert harness.fake.tasks() == {task_id}


# -- verify_callback ------------------------------------------------------------------------------

STATUSES = SCHEMAS["TaskStatus"]["enum"]
OUTPUT_TYPES = SCHEMAS["TaskOutput"]["properties"]["type"]["enum"]
SECONDS = st.integers(0, 2**40)
TOLERANCE = 300

task_objects = st.fixed_dictionaries(
    {
        "taskId": st.from_regex(r"tk-hiapi-[0-9A-HJKMNP-TV-Z]{26}", fullmatch=True),
        "model": st.text(min_size=1),
        "status": st.sampled_from(STATUSES),
        "created": SECONDS,
        "completed": SECONDS,
    },
    optional={
        "route": st.text(),
        "storage": st.text(),
        "output": st.lists(
            st.fixed_dictionaries(
                {
                    "url": st.text(min_size=1),
                    "type": st.sampled_from(OUTPUT_TYPES),
                    "expireAt": SECONDS,
                }
            ),
            max_size=3,
        ),
        "error": st.fixed_dictionaries({"code": st.text(), "message": st.text()}),
        "somethingNew": st.text(),  # a field added later must not break verification
    },
)
#: What the fake accepts as a webhook signing key: 16 to 256 characters.
secrets = st.text(min_size=16, max_size=256)


def fake_signed(task: Mapping[str, Any], secret: str, stamp: int) -> tuple[bytes, dict[str, str]]:
    """A delivery as the fake makes it: the compact JSON it sends, signed over those bytes."""
    body = json.dumps(task, separators=(",", ":"), ensure_ascii=False).encode()
    return body, signature_headers(secret, stamp, body)


@given(
    task=task_objects,
    secret=secrets,
    stamp=st.integers(0, 10**12),
    drift=st.integers(-TOLERANCE, TOLERANCE),
)
def test_verify_callback_accepts_every_delivery_the_fake_signs(
    task: dict[str, Any], secret: str, stamp: int, drift: int
) -> None:
    body, headers = fake_signed(task, secret, stamp)
    assert verify_callback(body, headers, secret, now=stamp + drift) == Task.from_dict(task)


@given(task=task_objects, secret=secrets, stamp=st.integers(0, 10**12), data=st.data())
def test_verify_callback_rejects_any_single_byte_change_of_the_body(
    task: dict[str, Any], secret: str, stamp: int, data: st.DataObject
) -> None:
    body, headers = fake_signed(task, secret, stamp)
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
    tampered = body[:index] + bytes([byte]) + body[index + 1 :]
    with pytest.raises(CallbackVerificationError):
        verify_callback(tampered, headers, secret, now=stamp)


@given(task=task_objects, secret=secrets, stamp=st.integers(0, 10**12), data=st.data())
def test_verify_callback_rejects_any_single_character_change_of_the_timestamp_or_key(
    task: dict[str, Any], secret: str, stamp: int, data: st.DataObject
) -> None:
    body, headers = fake_signed(task, secret, stamp)
    sent = headers["X-HiAPI-Timestamp"]
    index = data.draw(st.integers(0, len(sent) - 1), label="timestamp index")
    char = data.draw(PRINTABLE_ASCII.filter(lambda c: c != sent[index]), label="timestamp char")
    moved = {**headers, "X-HiAPI-Timestamp": sent[:index] + char + sent[index + 1 :]}
    with pytest.raises(CallbackVerificationError):
        verify_callback(body, moved, secret, now=stamp)

    index = data.draw(st.integers(0, len(secret) - 1), label="key index")
    other = data.draw(st.characters().filter(lambda c: c != secret[index]), label="key char")
    with pytest.raises(CallbackVerificationError):
        verify_callback(body, headers, secret[:index] + other + secret[index + 1 :], now=stamp)
