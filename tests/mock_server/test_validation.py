"""Create bodies checked without HTTP: model and route, the schema, the callback URL policy."""

from __future__ import annotations

from typing import Any

import pytest

from mock_server.catalog import catalog
from mock_server.config import MockConfig
from mock_server.errors import InvalidRequest
from mock_server.spec import spec
from mock_server.validation import parse_create


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana"}, **extra}


def parse(value: Any, config: MockConfig | None = None) -> Any:
    return parse_create(value, catalog(), spec(), config or MockConfig())


def test_a_valid_body_gets_its_defaults_and_keeps_its_callback() -> None:
    parsed = parse(body(callback={"url": "https://hooks.example/cb"}))
    assert parsed.wire_model == "Nano-Banana-Pro" and parsed.route is None
    assert parsed.params["prompt"] == "a banana" and len(parsed.params) > 1  # defaults filled
    assert parsed.callback_url == "https://hooks.example/cb"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "body: must be a JSON object"),
        ({"input": {"prompt": "x"}}, "model: is required"),
        (body(model="Nano-Banana-Max"), "model: unknown model 'Nano-Banana-Max'"),
        (body(route=7), "route: must be of type string"),
        (body(route="nope"), "route: unknown route 'nope'"),
        ({**body(), "input": {"prompt": "x", "callBackUrl": "https://a"}}, "input.callBackUrl"),
        (body(callback={"url": "https://:99999/cb"}), "callback.url: is not a valid URL"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(value: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(")):
        parse(value)


def test_callback_hosts_match_exactly_or_by_a_wildcard_subdomain() -> None:
    config = MockConfig(callback_hosts=("hooks.example", "*.ours.test"))
    assert parse(body(callback={"url": "https://hooks.example/cb"}), config).callback_url
    assert parse(body(callback={"url": "https://a.b.ours.test/cb"}), config).callback_url
    for url in ("https://evil.example/cb", "https://ours.test.evil/cb"):
        with pytest.raises(InvalidRequest, match="is not an allowed callback host"):
            parse(body(callback={"url": url}), config)


def test_https_only_refuses_plain_http() -> None:
    with pytest.raises(InvalidRequest, match=r"callback.url: must be an https:// URL"):
        parse(
            body(callback={"url": "http://hooks.example/cb"}), MockConfig(callback_https_only=True)
        )
