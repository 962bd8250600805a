"""What a create body must be before a task is made of it. No HTTP here.

A known model (with an optional `@route` suffix, or a `route` field, not both), its input
valid against the model's schema in `openapi.yaml` (at most `_MAX_PROBLEMS` problems named),
no callback settings hidden inside `input`, and a callback URL the fake's policy allows. Every
refusal is an `InvalidRequest` naming the field.

    >>> from mock_server.catalog import catalog
    >>> from mock_server.config import MockConfig
    >>> from mock_server.spec import spec
    >>> body = {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana"}}
    >>> parse_create(body, catalog(), spec(), MockConfig()).wire_model
    'Nano-Banana-Pro'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .catalog import Catalog, Model
from .config import MockConfig
from .errors import InvalidRequest
from .spec import Spec

__all__ = ["CreateRequest", "parse_create"]

_MAX_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A create body that passed: the model, its route, its input with defaults filled in."""

    model: Model
    wire_model: str  # as GET shows it: `Model@route` when a route was given
    route: str | None
    params: dict[str, Any]
    callback_url: str | None


def parse_create(body: Any, catalog: Catalog, spec: Spec, config: MockConfig) -> CreateRequest:
    """Validate a create body against the model's schema in `openapi.yaml` and the callback
    URL policy of `config`."""
    if not isinstance(body, dict):
        raise InvalidRequest("body: must be a JSON object")
    model, suffix = _model(catalog, body.get("model"))
    route = _route(model, suffix, body.get("route"))
    _refuse_callback_in_input(body.get("input"))
    problems = spec.validate_component(model.request_schema, body)
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        raise InvalidRequest("; ".join(problems[:_MAX_PROBLEMS]) + tail)
    callback = body.get("callback") or {}
    if callback:
        _check_callback_url(callback["url"], config)
    return CreateRequest(
        model=model,
        wire_model=f"{model.name}@{route}" if route else model.name,
        route=route,
        params=model.with_defaults(body["input"]),
        callback_url=callback.get("url"),
    )


def _model(catalog: Catalog, name: Any) -> tuple[Model, str]:
    if not isinstance(name, str) or not name:
        available = ", ".join(catalog.names())
        raise InvalidRequest(f"model: is required, a string; available models: {available}")
    base, _, suffix = name.partition("@")
    model = catalog.get(base)
    if model is None:
        available = ", ".join(catalog.names())
        raise InvalidRequest(f"model: unknown model {name[:100]!r}; available: {available}")
    return model, suffix


def _route(model: Model, suffix: str, route: Any) -> str | None:
    """The route given explicitly (echoed on the wire), or None for the implicit default."""
    if route is not None and not isinstance(route, str):
        raise InvalidRequest("route: must be of type string")
    given = {r for r in (suffix, route) if r}
    if len(given) > 1:
        raise InvalidRequest(f"route: {route!r} contradicts the model's @{suffix} suffix")
    chosen = given.pop() if given else None
    if chosen is not None and chosen not in model.routes:
        routes = ", ".join(model.routes)
        unknown = f"route: unknown route {chosen[:100]!r} for {model.name}"
        raise InvalidRequest(f"{unknown}; available routes: {routes}")
    return chosen


def _check_callback_url(url: str, config: MockConfig) -> None:
    """The fake's policy on top of the schema: https only, and allowed hosts, if asked."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise InvalidRequest("callback.url: is not a valid URL") from None
    if not host:
        raise InvalidRequest("callback.url: has no host")
    if config.callback_https_only and parts.scheme.lower() != "https":
        raise InvalidRequest("callback.url: must be an https:// URL")
    allowed = config.callback_hosts
    if allowed and not any(_host_matches(host, pattern) for pattern in allowed):
        raise InvalidRequest(f"callback.url: host {host[:100]!r} is not an allowed callback host")


def _refuse_callback_in_input(params: Any) -> None:
    if not isinstance(params, Mapping):
        return
    for name in params:
        if isinstance(name, str) and "callback" in name.lower():
            raise InvalidRequest(
                f"input.{name[:100]}: callback settings belong at the top level of the body "
                '(callback: {"url": ...}), not inside input'
            )


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern
