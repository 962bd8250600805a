"""`openapi.yaml` loaded once, and the validators built from its schemas.

The fake validates requests and the tests validate responses with these: no schema or enum is
written a second time in code.

    >>> problems = spec().validate_component("NanoBananaProInput", {"prompt": ""}, at="input")
    >>> problems[0]
    'input.prompt: must be at least 1 character long'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

__all__ = ["Spec", "spec", "spec_path"]

_MAX_SHOWN = 60
_MAX_ERRORS = 50


def spec_path() -> Path:
    """Where `openapi.yaml` is: inside the installed package, else at the source checkout's root."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "openapi.yaml", here.parent / "openapi.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("openapi.yaml is neither in the package nor beside it")


@functools.cache
def spec() -> Spec:
    """The project's OpenAPI document, loaded and compiled once per process."""
    with spec_path().open(encoding="utf-8") as fh:
        return Spec(yaml.safe_load(fh))


@dataclass(frozen=True, slots=True)
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    node: Mapping[str, Any]


class Spec:
    """An OpenAPI 3.1 document with compiled validators for its component schemas."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._validators: dict[str, Any] = {}
        self._operations = [
            _Operation(method.upper(), template, _template_regex(template), node)
            for template, item in document.get("paths", {}).items()
            for method, node in item.items()
            if method in {"get", "post", "put", "patch", "delete"}
        ]

    # -- schemas -----------------------------------------------------------------------------

    def schema(self, name: str) -> Mapping[str, Any]:
        """The component schema called `name`."""
        return self.document["components"]["schemas"][name]  # type: ignore[no-any-return]

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow a local `$ref` (and the chain of them) to the object it names."""
        while "$ref" in node:
            node = self._pointer(node["$ref"])
        return node

    def validate_component(self, name: str, instance: Any, *, at: str = "") -> list[str]:
        """Problems of `instance` against component `name`, each naming the field and the rule."""
        return self.validate_ref(f"#/components/schemas/{name}", instance, at=at)

    def validate_ref(self, ref: str, instance: Any, *, at: str = "") -> list[str]:
        validator = self._validators.get(ref)
        if validator is None:
            root = {"$ref": ref, "components": self.document["components"]}
            validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
            self._validators[ref] = validator
        if validator.is_valid(instance):
            return []
        return self._problems(validator, instance, at)

    def _problems(self, validator: Any, instance: Any, at: str) -> list[str]:
        # One problem per field: a wrong type makes every other rule of that field noise.
        found: dict[str, tuple[int, str]] = {}
        for count, error in enumerate(validator.iter_errors(instance)):
            if count >= _MAX_ERRORS:  # enough to name the problems; the rest is the same story
                break
            node = self._node(list(error.schema_path)[:-1])
            field, text = _describe(error, at, node)
            rank = 0 if error.kind.name == "type" else 1
            if field not in found or rank < found[field][0]:
                found[field] = (rank, text)
        return sorted(text for _, text in found.values())

    def _node(self, path: list[str | int]) -> Mapping[str, Any]:
        node: Any = self.document
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return {}
        return node if isinstance(node, Mapping) else {}

    def _pointer(self, ref: str) -> Mapping[str, Any]:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    # -- operations and responses --------------------------------------------------------------

    def operation(self, method: str, path: str) -> _Operation | None:
        """The operation that serves `method path`, if the document has one."""
        for op in self._operations:
            if op.method == method.upper() and op.pattern.fullmatch(path):
                return op
        return None

    def check_response(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: Any
    ) -> list[str]:
        """Everything in an answer that disagrees with the document (empty when it conforms).

        Checks that the operation exists and declares the status, that every required header is
        present and valid, and that the JSON body validates against the declared schema.
        """
        op = self.operation(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in openapi.yaml"]
        declared = op.node.get("responses", {})
        if str(status) not in declared:
            return [f"{op.method} {op.template}: status {status} is not declared"]
        response = self.resolve(declared[str(status)])
        where = f"{op.method} {op.template} {status}"
        problems = self._check_headers(response, headers, where)
        content = response.get("content", {}).get("application/json")
        if content is not None:
            problems += [f"{where}: {p}" for p in self._check_body(content, body)]
        return problems

    def _check_headers(
        self, response: Mapping[str, Any], headers: Mapping[str, str], where: str
    ) -> list[str]:
        lowered = {k.lower(): v for k, v in headers.items()}
        problems = []
        for name, ref in response.get("headers", {}).items():
            header = self.resolve(ref)
            value = lowered.get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"{where}: required header {name} is missing")
                continue
            schema = header.get("schema", {})
            typed: Any = (
                int(value) if schema.get("type") == "integer" and value.isdigit() else value
            )
            validator = jsonschema_rs.Draft202012Validator(schema)
            if not validator.is_valid(typed):
                problems.append(f"{where}: header {name}={value!r} does not match its schema")
        return problems

    def _check_body(self, content: Mapping[str, Any], body: Any) -> list[str]:
        schema = content.get("schema")
        if schema is None:
            return []
        ref = schema.get("$ref")
        if ref is not None:
            return self.validate_ref(ref, body)
        root = {**schema, "components": self.document["components"]}
        validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
        return self._problems(validator, body, "")


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))


def _field(path: list[str | int], at: str) -> str:
    parts = [at] if at else []
    for part in path:
        if isinstance(part, int):
            parts[-1 if parts else 0 :] = [f"{parts[-1] if parts else ''}[{part}]"]
        else:
            parts.append(part)
    return ".".join(parts) or "body"


def _describe(error: Any, at: str, node: Mapping[str, Any]) -> tuple[str, str]:
    """One problem as (field, "field: rule"), never echoing a huge value back.

    A schema may word its own rule with `x-message`; otherwise the rule is named from its kind.
    """
    field = _field(list(error.instance_path), at)
    kind = error.kind
    name = kind.name
    if name == "required":
        child = _join(field, kind.property)
        return child, f"{child}: is required"
    if name == "additionalProperties":
        extra = ", ".join(_short(repr(k)) for k in sorted(kind.unexpected)[:10])
        allowed = ", ".join(sorted(node.get("properties", {}))) or "none"
        return field, f"{field}: unknown field {extra}; allowed fields: {allowed}"
    if "x-message" in node:
        return field, f"{field}: {node['x-message']}"
    rule = _RULES.get(name)
    return field, f"{field}: {rule(kind) if rule else _short(error.message)}"


def _join(field: str, child: str) -> str:
    return child if field == "body" else f"{field}.{child}"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_RULES: dict[str, Any] = {
    "maxLength": lambda k: f"must be at most {_plural(k.limit, 'character')} long",
    "minLength": lambda k: f"must be at least {_plural(k.limit, 'character')} long",
    "maxItems": lambda k: f"must have at most {_plural(k.limit, 'item')}",
    "minItems": lambda k: f"must have at least {_plural(k.limit, 'item')}",
    "enum": lambda k: "must be one of " + ", ".join(_short(repr(o)) for o in k.options),
    "const": lambda k: f"must be {_short(repr(k.expected_value))}",
    "type": lambda k: f"must be of type {_types(k)}",
    "format": lambda k: f"must be a valid {k.format}",
    "pattern": lambda k: f"must match the pattern {k.pattern}",
    "minimum": lambda k: f"must be at least {k.limit}",
    "maximum": lambda k: f"must be at most {k.limit}",
    "falseSchema": lambda k: "is not allowed here",
    "oneOf": lambda k: "does not match any allowed shape",
}


def _types(kind: Any) -> str:
    types = getattr(kind, "types", None) or getattr(kind, "value", None) or []
    if isinstance(types, str):
        return types
    return " or ".join(str(t) for t in types)
