"""Scenarios and faults: rules that match requests and change what happens. No HTTP here.

A rule is a `Match` (every field given must hold), one action, and optionally `times` (how often
it may act before it is spent). Request actions (`HttpFault`, `Delay`, `Hang`, `DropConnection`)
change the answer to the matching request itself; task actions (`Outcome`, `TaskTiming`, and a
`CallbackFault`) change the task a matching create makes. The first live rule of each kind wins.

Prompt directives are rules for one request written into `input.prompt`, for clients that can
only speak HiAPI:

    >>> [type(a).__name__ for a in directives("hero shot [mock:fail=TASK_FAILED] [mock:delay=90s]")]
    ['Outcome', 'TaskTiming']

- `[mock:fail]`, `[mock:fail=CODE]`, `[mock:fail=CODE:message]`: the task ends in `fail`;
- `[mock:succeed]`: the task ends in `success` whatever the failure rate;
- `[mock:delay=90s]` (`ms`, `s`, `m`, `h`): the task takes that long from creation to its end;
- `[mock:callback=drop]` (or `duplicate[:N]`, `delay:90s`, `reorder`, `bad_signature`,
  `stale_timestamp`): the callback misbehaves;
- `[mock:http=503]`, `[mock:http=429:7]`: this create is answered with that status (and
  `Retry-After`).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import threading
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, TypeAlias

from .delivery import CallbackFault, Fault

__all__ = [
    "Action",
    "Delay",
    "DropConnection",
    "Hang",
    "HttpFault",
    "Match",
    "Outcome",
    "RequestFacts",
    "Rule",
    "RuleError",
    "Rules",
    "TaskActions",
    "TaskTiming",
    "directives",
    "parse_duration",
    "rule_from_json",
]

_FAULT_STATUSES = frozenset({400, 401, 402, 403, 404, 429, 500, 503})
_DEFAULT_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_BALANCE",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "MODEL_UNAVAILABLE",
}
_DIRECTIVE = re.compile(r"\[mock:([a-z_]+)(?:=([^\]]*))?\]", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class RuleError(ValueError):
    """A rule or directive that cannot be understood; the message names the field."""


# -- what a rule matches ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What rules can match on: the request, and for a create, what it asks for."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    api_key: str | None = None
    model: str | None = None
    route: str | None = None
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """Every field that is set must hold. `path` may use `*` wildcards; `prompt` is a
    substring, `prompt_regex` a regular expression; `headers` maps a name to a substring of
    its value."""

    model: str | None = None
    route: str | None = None
    api_key: str | None = None
    prompt: str | None = None
    prompt_regex: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.prompt_regex is not None:
            try:
                re.compile(self.prompt_regex)
            except re.error as exc:
                raise RuleError(
                    f"match.prompt_regex: not a valid regular expression: {exc}"
                ) from None

    @property
    def needs_body(self) -> bool:
        return any(v is not None for v in (self.model, self.route, self.prompt, self.prompt_regex))

    def matches(self, facts: RequestFacts) -> bool:
        return (
            _same(self.method, facts.method.upper(), str.upper)
            and (self.path is None or fnmatch.fnmatchcase(facts.path, self.path))
            and _same(self.api_key, facts.api_key)
            and self._model_matches(facts)
            and _same(self.route, facts.route)
            and (self.prompt is None or self.prompt in (facts.prompt or ""))
            and (
                self.prompt_regex is None
                or re.search(self.prompt_regex, facts.prompt or "") is not None
            )
            and all(
                k.lower() in facts.headers and v in facts.headers[k.lower()]
                for k, v in self.headers.items()
            )
        )

    def _model_matches(self, facts: RequestFacts) -> bool:
        """`model` may be `base` (any route) or `base@route` (that route only)."""
        if self.model is None:
            return True
        base, _, route = self.model.partition("@")
        return base == _base_model(facts.model) and (not route or route == facts.route)


def _same(expected: str | None, actual: str | None, fold: Any = None) -> bool:
    if expected is None:
        return True
    return actual is not None and (fold(expected) if fold else expected) == actual


def _base_model(model: str | None) -> str | None:
    return model.partition("@")[0] if model else model


# -- what a rule does ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """The task ends in `status`; a failure carries `code` and `message`."""

    status: Literal["success", "fail"] = "fail"
    code: str = "TASK_FAILED"
    message: str = "upstream rejected the prompt"

    def __post_init__(self) -> None:
        if self.status not in ("success", "fail"):
            raise RuleError("action.status: must be success or fail")
        if not isinstance(self.code, str) or not isinstance(self.message, str):
            raise RuleError("action.code and action.message: must be strings")


@dataclass(frozen=True, slots=True)
class TaskTiming:
    """Seconds the task spends queued, handling and archiving."""

    queued: float = 0.0
    handling: float = 0.0
    archiving: float = 0.0

    def __post_init__(self) -> None:
        for name in ("queued", "handling", "archiving"):
            _seconds(f"action.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class HttpFault:
    """Answer the request with `status` in HiAPI's envelope (and `Retry-After`, if given)."""

    status: int = 503
    error_code: str | None = None
    message: str | None = None
    retry_after: int | None = None

    def __post_init__(self) -> None:
        retry = self.retry_after
        if retry is not None and (
            isinstance(retry, bool) or not isinstance(retry, int) or retry < 0
        ):
            raise RuleError("action.retry_after: must be a whole number of seconds, 0 or more")
        for name in ("error_code", "message"):
            if not isinstance(getattr(self, name), str | None):
                raise RuleError(f"action.{name}: must be a string")
        if self.status not in _FAULT_STATUSES:
            allowed = ", ".join(str(s) for s in sorted(_FAULT_STATUSES))
            raise RuleError(f"action.status: must be one of {allowed}")

    @property
    def code(self) -> str:
        return self.error_code or _DEFAULT_CODES[self.status]


@dataclass(frozen=True, slots=True)
class Delay:
    """Answer normally, `seconds` of wall time late."""

    seconds: float

    def __post_init__(self) -> None:
        _seconds("action.seconds", self.seconds)


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer, until the client gives up (or `seconds` of wall time pass)."""

    seconds: float = 600.0

    def __post_init__(self) -> None:
        _seconds("action.seconds", self.seconds)


def _seconds(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= 86_400 * 365
    ):
        raise RuleError(f"{name}: must be a number of seconds, 0 or more")


@dataclass(frozen=True, slots=True)
class DropConnection:
    """Close the connection without an answer."""


Action: TypeAlias = Outcome | TaskTiming | HttpFault | Delay | Hang | DropConnection | CallbackFault
RequestAction: TypeAlias = HttpFault | Delay | Hang | DropConnection
_REQUEST_ACTIONS = (HttpFault, Delay, Hang, DropConnection)


@dataclass(slots=True)
class Rule:
    """A match, an action and how often it may still act (None: always)."""

    id: str
    match: Match
    action: Action
    times: int | None = None
    used: int = 0

    @property
    def live(self) -> bool:
        return self.times is None or self.used < self.times

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "match": _match_json(self.match),
            "action": action_json(self.action),
            "times": self.times,
            "used": self.used,
        }


@dataclass(slots=True)
class TaskActions:
    """What the rules (and directives) say about a task being created."""

    outcome: Outcome | None = None
    timing: TaskTiming | None = None
    callback: CallbackFault | None = None

    def merge(self, action: Action) -> None:
        """Take `action` unless one of its kind is already set (earlier ones win)."""
        kind = _TASK_KINDS.get(type(action))
        if kind is not None and getattr(self, kind) is None:
            setattr(self, kind, action)


_TASK_KINDS: dict[type[Any], str] = {
    Outcome: "outcome",
    TaskTiming: "timing",
    CallbackFault: "callback",
}


class Rules:
    """The live rules, in the order they were added. Thread-safe."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(
        self, match: Match | None = None, action: Action | None = None, times: int | None = None
    ) -> Rule:
        if action is None:
            raise RuleError("action: is required")
        if times is not None and times < 1:
            raise RuleError("times: must be at least 1")
        with self._lock:
            rule = Rule(f"rule-{next(self._ids)}", match or Match(), action, times)
            self._rules.append(rule)
        return rule

    def add_json(self, data: Any) -> Rule:
        return self.add(*rule_from_json(data))

    def list(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def delete(self, rule_id: str) -> bool:
        with self._lock:
            kept = [r for r in self._rules if r.id != rule_id]
            found = len(kept) != len(self._rules)
            self._rules = kept
        return found

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._ids = itertools.count(1)

    @property
    def has_request_rules(self) -> bool:
        """Whether any live rule acts on requests (so the fault check can be skipped)."""
        return any(r.live and isinstance(r.action, _REQUEST_ACTIONS) for r in self._rules)

    @property
    def need_body(self) -> bool:
        """Whether any live request rule matches on what a create body asks for."""
        return any(
            r.live and r.match.needs_body and isinstance(r.action, _REQUEST_ACTIONS)
            for r in self._rules
        )

    def take_request_action(self, facts: RequestFacts) -> RequestAction | None:
        """The first live request rule matching `facts`, used once."""
        with self._lock:
            for rule in self._rules:
                if isinstance(rule.action, _REQUEST_ACTIONS) and self._use(rule, facts):
                    return rule.action
        return None

    def take_task_actions(
        self, facts: RequestFacts, already: TaskActions | None = None
    ) -> TaskActions:
        """For each kind of task action not `already` decided (by a directive), the first
        live rule matching `facts`, used once; a rule that would change nothing is not used."""
        found = TaskActions()
        taken = already or TaskActions()
        with self._lock:
            for rule in self._rules:
                kind = _TASK_KINDS.get(type(rule.action))
                if kind is None or getattr(found, kind) is not None or getattr(taken, kind):
                    continue
                if self._use(rule, facts):
                    setattr(found, kind, rule.action)
        return found

    @staticmethod
    def _use(rule: Rule, facts: RequestFacts) -> bool:
        if not rule.live or not rule.match.matches(facts):
            return False
        rule.used += 1
        return True


# -- prompt directives --------------------------------------------------------------------------


def directives(prompt: str) -> list[Action]:
    """The actions written into a prompt as `[mock:NAME=VALUE]`; RuleError names a bad one."""
    return [_directive(name.lower(), value) for name, value in _DIRECTIVE.findall(prompt)]


def _directive(name: str, value: str) -> Action:
    shown = value if len(value) <= 40 else value[:39] + "…"
    where = f"input.prompt: [mock:{name}{'=' + shown if value else ''}]"
    try:
        if name == "fail":
            code, _, message = value.partition(":")
            return Outcome("fail", code or "TASK_FAILED", message or "upstream rejected the prompt")
        if name == "succeed":
            return Outcome("success")
        if name == "delay":
            return _spread(parse_duration(value))
        if name == "callback":
            return _callback_directive(value)
        if name == "http":
            status, _, retry = value.partition(":")
            return HttpFault(int(status), retry_after=int(retry) if retry else None)
    except (RuleError, ValueError) as exc:
        raise RuleError(f"{where}: {exc}") from None
    raise RuleError(f"{where}: unknown directive; known: fail, succeed, delay, callback, http")


def _callback_directive(value: str) -> CallbackFault:
    kind, _, arg = value.partition(":")
    try:
        fault = Fault(kind)
    except ValueError:
        raise RuleError(f"unknown callback fault {kind!r}") from None
    if fault is Fault.DUPLICATE and arg:
        return CallbackFault(fault, copies=int(arg))
    if fault is Fault.DELAY and arg:
        return CallbackFault(fault, delay=parse_duration(arg))
    return CallbackFault(fault)


def _spread(total: float) -> TaskTiming:
    """A total duration split as a live task spends it: a little queued, most handling."""
    return TaskTiming(queued=total * 0.1, handling=total * 0.8, archiving=total * 0.1)


def parse_duration(text: str) -> float:
    """`90s`, `1.5m`, `500ms`, `2h` or plain seconds."""
    found = _DURATION.match(text)
    if found is None:
        raise RuleError(f"{text[:40]!r} is not a duration such as 90s, 500ms, 2m or 1h")
    return float(found.group(1)) * _UNITS[found.group(2)]


# -- JSON, for the control API and configuration files -----------------------------------------


def rule_from_json(data: Any) -> tuple[Match, Action, int | None]:
    """(match, action, times) of a rule written as JSON; RuleError names what is wrong."""
    if not isinstance(data, Mapping):
        raise RuleError("body: must be an object with match, action and times")
    unknown = set(data) - {"match", "action", "times"}
    if unknown:
        raise RuleError(f"body: unknown field(s) {', '.join(sorted(unknown))}")
    times = data.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool)):
        raise RuleError("times: must be a whole number")
    if times is not None and times < 1:
        raise RuleError("times: must be at least 1")
    match = data.get("match", {})
    return _match_from_json(match), action_from_json(data.get("action")), times


def _match_from_json(data: Any) -> Match:
    if not isinstance(data, Mapping):
        raise RuleError("match: must be an object")
    headers = data.get("headers", {})
    if isinstance(headers, Mapping) and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise RuleError("match.headers: must map header names to strings")
    allowed = set(Match.__dataclass_fields__)
    unknown = set(data) - allowed
    if unknown:
        known = ", ".join(sorted(allowed))
        raise RuleError(f"match: unknown field(s) {', '.join(sorted(unknown))}; known: {known}")
    for name, value in data.items():
        ok = isinstance(value, Mapping) if name == "headers" else isinstance(value, str)
        if not ok:
            raise RuleError(
                f"match.{name}: must be {'an object' if name == 'headers' else 'a string'}"
            )
    return Match(**data)


_ACTION_TYPES: dict[str, type[Any]] = {
    "outcome": Outcome,
    "timing": TaskTiming,
    "http": HttpFault,
    "delay": Delay,
    "hang": Hang,
    "drop_connection": DropConnection,
    "callback": CallbackFault,
}


def action_from_json(data: Any) -> Action:
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        kinds = ", ".join(_ACTION_TYPES)
        raise RuleError(f"action: must be an object with a type, one of {kinds}")
    fields = {k: v for k, v in data.items() if k != "type"}
    kind = data["type"]
    cls = _ACTION_TYPES.get(kind)
    if cls is None:
        raise RuleError(f"action.type: unknown {kind[:40]!r}; one of {', '.join(_ACTION_TYPES)}")
    if cls is CallbackFault and "kind" in fields:
        try:
            fields["kind"] = Fault(fields["kind"])
        except ValueError:
            kinds = ", ".join(f.value for f in Fault)
            raise RuleError(f"action.kind: must be one of {kinds}") from None
    known = cls.__dataclass_fields__
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise RuleError(f"action: unknown field(s) {', '.join(unknown)} for type {kind}")
    missing = [n for n, f in known.items() if n not in fields and _required(f)]
    if missing:
        raise RuleError(f"action.{missing[0]}: is required for type {kind}")
    try:
        action: Action = cls(**fields)
    except RuleError:
        raise
    except (TypeError, ValueError) as exc:
        raise RuleError(f"action: {exc}") from None
    return action


def _required(spec: Any) -> bool:
    return spec.default is MISSING and spec.default_factory is MISSING


def action_json(action: Action) -> dict[str, Any]:
    kind = next(k for k, cls in _ACTION_TYPES.items() if isinstance(action, cls))
    data: dict[str, Any] = {"type": kind}
    for name in type(action).__dataclass_fields__:
        value = getattr(action, name)
        data[name] = value.value if isinstance(value, Fault) else value
    return data


def _match_json(match: Match) -> dict[str, Any]:
    return {
        name: (dict(value) if name == "headers" else value)
        for name in Match.__dataclass_fields__
        if (value := getattr(match, name)) not in (None, {})
    }
