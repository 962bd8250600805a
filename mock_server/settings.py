"""Configuration files: one TOML file holds a whole scenario for `hiapi-mock serve --config`.

    [server]     host, port, public_url, control_token
    [fake]       seed, profile, clock, time_scale, start_time, failure_rate, rate_limit,
                 journal_size, state
    [callbacks]  webhook_secret, https_only, allow_hosts, timeout, retries, log_size
    [chaos]      rate_429, rate_503, callback_faults
    [[keys]]     key, state, balance, webhook_secret
    [[rules]]    match, action, times (the control API's JSON form of a rule)

Anything absent keeps the fake's default; `overrides` (the command line) replace the file's
values key by key, and the `keys` and `rules` arrays as a whole. Every mistake, an unknown
section or key included, is a `SettingsError` naming the file and the key:

    >>> parse_settings('[fake]\\nclock = "manual"\\nseed = 7').config.seed
    7
    >>> parse_settings("[fake]\\nsede = 7", source="mock.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mock_server.settings.SettingsError: mock.toml: fake.sede: unknown key; known: seed, ...
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal, TypeAlias

from starlette.applications import Starlette

from .app import create_app
from .backend import Backend
from .catalog import PROFILES
from .clock import DEFAULT_START, ManualClock, RealClock
from .config import Chaos, KeyPolicy, KeyState, MockConfig
from .delivery import DeliveryPolicy, Fault
from .rules import RuleError, Rules
from .signing import check_secret
from .sqlite_store import SqliteStore

__all__ = [
    "CLOCK_KINDS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ClockKind",
    "Settings",
    "SettingsError",
    "check_option",
    "load_settings",
    "parse_settings",
    "parse_time",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
ClockKind: TypeAlias = Literal["real", "manual"]
CLOCK_KINDS: tuple[ClockKind, ...] = ("real", "manual")
_COMMAND_LINE = "command line"


class SettingsError(ValueError):
    """Settings that cannot be used; the message starts with the file (or command line) and key."""


@dataclass(slots=True)
class Settings:
    """What `hiapi-mock serve` runs: where it listens, the fake's config, its clock, and the
    rules it starts with (as JSON objects, already validated)."""

    config: MockConfig = field(default_factory=MockConfig)
    clock: ManualClock = field(default_factory=RealClock)
    clock_kind: ClockKind = "real"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    rules: tuple[dict[str, Any], ...] = ()
    source: str | None = None  # the file read, if any
    state: str | None = None  # the SQLite file that keeps the fake's state, if any

    def create_app(self) -> Starlette:
        """The fake, with the rules added. `POST /_mock/reset` adds them again: they are the
        starting scenario, as the keys and the clock's start are.

        With `state`, the fake is kept in that file, and one that holds an earlier run's
        state goes on from it: its tasks, rules and clock win over the starting scenario.
        A `StateError` says why the file cannot be used."""
        store = SqliteStore(self.state) if self.state is not None else None
        try:
            backend = Backend(self.config, clock=self.clock, store=store)
        except BaseException:
            if store is not None:
                store.close()
            raise
        return create_app(backend=backend)


def load_settings(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from a TOML file (None: the defaults), then `overrides` in the file's shape."""
    if path is None:
        return parse_settings("", _COMMAND_LINE, overrides)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the configuration file: {exc}") from None
    return parse_settings(text, str(path), overrides)


def parse_settings(
    text: str, source: str = "<string>", overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from TOML text; `source` names it in errors."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{source}: not valid TOML: {exc}") from None
    values = _read(document, source)
    if overrides:
        values.update(_read(overrides, _COMMAND_LINE))
    settings = _build(values, source)
    settings.source = None if source == _COMMAND_LINE else source
    return settings


def parse_time(value: Any) -> float:
    """Unix seconds from Unix seconds, an ISO 8601 string or a TOML date-time (no zone: UTC).

    >>> parse_time("2026-01-01T00:00:00Z"), parse_time("2026-01-01 00:00"), parse_time(0)
    (1767225600.0, 1767225600.0, 0.0)
    """
    when = "must be Unix seconds or an ISO 8601 time such as 2026-01-01T00:00:00Z"
    if isinstance(value, str):
        try:
            return _number(float(value))
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(when) from None
    if isinstance(value, datetime):
        # A zone-less time means UTC, so one file gives the same ids on every machine.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(when.replace("must be ", ""), value)
    return _number(value)


def check_option(name: str, value: Any) -> Any:
    """`value` checked as the file's option `name` (`section.key`, or `keys.FIELD` for a
    field of a `[[keys]]` table), for the command line; ValueError says what is wrong.

    >>> check_option("fake.failure_rate", 0.25)
    0.25
    """
    section, _, key = name.partition(".")
    check = _KEY_FIELDS[key] if section == "keys" else _SECTIONS[section][key].check
    try:
        return check(value)
    except _Invalid as exc:
        raise ValueError(f"{exc.sub.lstrip('.')}: {exc}" if exc.sub else str(exc)) from None


# -- reading -------------------------------------------------------------------------------------


class _Invalid(ValueError):
    """A bad value; `sub` is the part of it that is wrong (`.drop` of a table), if not all."""

    def __init__(self, message: str, sub: str = "") -> None:
        super().__init__(message)
        self.sub = sub


_Check: TypeAlias = Callable[[Any], Any]
_Values: TypeAlias = dict[str, Any]  # "section.key": checked value; "keys", "rules": arrays


def _read(document: Mapping[str, Any], source: str) -> _Values:
    values: _Values = {}
    for section, table in document.items():
        if section == "keys":
            values["keys"] = _read_keys(table, source)
        elif section == "rules":
            values["rules"] = _read_rules(table, source)
        elif section in _SECTIONS:
            values.update(_read_section(section, table, source))
        else:
            raise SettingsError(
                f"{source}: {section}: unknown section{_hint(section)}; known: {_KNOWN_SECTIONS}"
            )
    return values


def _read_section(section: str, table: Any, source: str) -> _Values:
    if not isinstance(table, Mapping):
        raise SettingsError(f"{source}: {section}: must be a table [{section}], not {_kind(table)}")
    options = _SECTIONS[section]
    values: _Values = {}
    for key, raw in table.items():
        where = f"{section}.{key}"
        if key not in options:
            known = ", ".join(options)
            raise SettingsError(f"{source}: {where}: unknown key{_hint(key)}; known: {known}")
        values[where] = _checked(options[key].check, raw, source, where)
    return values


def _checked(check: _Check, raw: Any, source: str, where: str) -> Any:
    try:
        return check(raw)
    except _Invalid as exc:
        raise SettingsError(f"{source}: {where}{exc.sub}: {exc}") from None


def _hint(name: str) -> str:
    # A key in the wrong section is a likelier mistake than a new word: say where it belongs.
    homes = [section for section, options in _SECTIONS.items() if name in options]
    return f" (it belongs in [{homes[0]}])" if homes else ""


def _tables(array: Any, name: str, source: str) -> list[Mapping[str, Any]]:
    if not isinstance(array, list):
        raise SettingsError(f"{source}: {name}: must be an array of tables [[{name}]]")
    for index, table in enumerate(array):
        if not isinstance(table, Mapping):
            raise SettingsError(f"{source}: {name}[{index}]: must be a table, not {_kind(table)}")
    return array


def _read_keys(array: Any, source: str) -> dict[str, KeyPolicy]:
    keys: dict[str, KeyPolicy] = {}
    for index, table in enumerate(_tables(array, "keys", source)):
        where = f"keys[{index}]"
        if "key" not in table:
            raise SettingsError(f"{source}: {where}.key: is required")
        checked: dict[str, Any] = {}
        for name, raw in table.items():
            if name not in _KEY_FIELDS:
                known = ", ".join(_KEY_FIELDS)
                raise SettingsError(f"{source}: {where}.{name}: unknown key; known: {known}")
            checked[name] = _checked(_KEY_FIELDS[name], raw, source, f"{where}.{name}")
        key = checked.pop("key")
        if key in keys:
            raise SettingsError(f"{source}: {where}.key: {key!r} is listed twice")
        keys[key] = KeyPolicy(**checked)
    return keys


def _read_rules(array: Any, source: str) -> tuple[dict[str, Any], ...]:
    tables = _tables(array, "rules", source)
    scratch = Rules()  # adding checks `times` too, which rule_from_json leaves to Rules.add
    for index, table in enumerate(tables):
        try:
            scratch.add_json(table)
        except RuleError as exc:
            raise SettingsError(f"{source}: rules[{index}]{_rule_field(str(exc))}") from None
    return tuple(dict(table) for table in tables)


def _rule_field(message: str) -> str:
    # RuleError messages start with the field ("action.status: ..."), "body" for the whole
    # rule, and at times twice over ("action: action.status: ...").
    head, _, rest = message.partition(": ")
    if rest.startswith(head + "."):
        message = rest
    if message.startswith("body:"):
        return message.removeprefix("body")
    return "." + message


def _build(values: _Values, source: str) -> Settings:
    parts: dict[str, dict[str, Any]] = {p: {} for p in ("server", "config", "delivery", "chaos")}
    clock: dict[str, Any] = {}
    for name, value in values.items():
        if name not in ("keys", "rules"):
            section, key = name.split(".")
            option = _SECTIONS[section][key]
            (clock if option.into == "clock" else parts[option.into])[option.field] = value
    _check_chaos_sums(parts["chaos"], source)
    rules = values.get("rules", ())
    config = MockConfig(
        keys=values.get("keys", {}),
        delivery=DeliveryPolicy(**parts["delivery"]),
        chaos=Chaos(**parts["chaos"]),
        rules=rules,
        **parts["config"],
    )
    kind: ClockKind = clock.pop("kind", "real")
    return Settings(config, _clock(kind, **clock), kind, rules=rules, **parts["server"])


def _check_chaos_sums(chaos: Mapping[str, Any], source: str) -> None:
    # Each is a share of the same draw, so together they cannot pass 1.
    statuses = chaos.get("rate_429", 0.0) + chaos.get("rate_503", 0.0)
    if statuses > 1:
        where = "chaos.rate_429 + chaos.rate_503"
        raise SettingsError(f"{source}: {where}: must add up to at most 1, not {statuses:g}")
    faults = sum(chaos.get("callback_faults", {}).values())
    if faults > 1:
        where = "chaos.callback_faults"
        raise SettingsError(f"{source}: {where}: rates must add up to at most 1, not {faults:g}")


def _clock(kind: ClockKind, speed: float = 1.0, start: float | None = None) -> ManualClock:
    if kind == "manual":
        # Frozen until advanced, from a fixed start so runs repeat; time_scale has no say.
        return ManualClock(DEFAULT_START if start is None else start)
    return RealClock(start, speed)


# -- values --------------------------------------------------------------------------------------


_KINDS: tuple[tuple[type[Any], str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int to Python, not to TOML
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
    (datetime, "a date-time"),
    (date, "a date"),
    (time, "a time"),
)


def _kind(value: Any) -> str:
    return next((name for cls, name in _KINDS if isinstance(value, cls)), type(value).__name__)


def _wrong(wanted: str, value: Any) -> _Invalid:
    return _Invalid(f"must be {wanted}, not {_kind(value)}")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong("a string", value)
    if not value.strip():
        raise _Invalid("must not be empty")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong("an integer", value)
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong("a number", value)
    if not math.isfinite(value):  # TOML allows inf and nan
        raise _Invalid(f"must be a finite number, not {value}")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _wrong("true or false", value)
    return value


def _within(check: _Check, ok: Callable[[Any], bool], wanted: str) -> _Check:
    def checked(value: Any) -> Any:
        number = check(value)
        if not ok(number):
            raise _Invalid(f"must be {wanted}, not {number:g}")
        return number

    return checked


_non_negative = _within(_number, lambda n: n >= 0, "0 or more")
_positive = _within(_number, lambda n: n > 0, "more than 0")
_probability = _within(_number, lambda n: 0 <= n <= 1, "between 0 and 1")
_count = _within(_integer, lambda n: n >= 0, "0 or more")
_port = _within(_integer, lambda n: 1 <= n <= 65_535, "a TCP port from 1 to 65535")


def _choice(*names: str) -> _Check:
    def checked(value: Any) -> str:
        name = _string(value)
        if name not in names:
            raise _Invalid(f"must be one of {', '.join(names)}, not {name[:40]!r}")
        return name

    return checked


def _url(value: Any) -> str:
    url = _string(value)
    if not url.startswith(("http://", "https://")):
        raise _Invalid(f"must be an http:// or https:// URL, not {url[:60]!r}")
    return url


def _secret(value: Any) -> str:
    secret = _string(value)
    try:
        return check_secret(secret)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _api_key(value: Any) -> str:
    key = _string(value)
    if not key.startswith("sk-") or len(key) < 4:  # what the fake accepts as a key at all
        raise _Invalid(f"must look like sk-..., not {key[:40]!r}")
    return key


def _array(check: _Check, wanted: str) -> _Check:
    def checked(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise _wrong(wanted, value)
        items = []
        for index, item in enumerate(value):
            try:
                items.append(check(item))
            except _Invalid as exc:
                raise _Invalid(str(exc), f"[{index}]") from None
        return tuple(items)

    return checked


def _fault_rates(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _wrong("a table of fault = rate", value)
    known = [fault.value for fault in Fault]
    rates: dict[str, float] = {}
    for name, rate in value.items():
        if name not in known:
            raise _Invalid(f"unknown callback fault; known: {', '.join(known)}", f".{name}")
        try:
            rates[name] = _probability(rate)
        except _Invalid as exc:
            raise _Invalid(str(exc), f".{name}") from None
    return rates


@dataclass(frozen=True, slots=True)
class _Option:
    check: _Check
    into: Literal["server", "config", "delivery", "chaos", "clock"]  # where the value goes
    field: str


_SECTIONS: dict[str, dict[str, _Option]] = {
    "server": {
        "host": _Option(_string, "server", "host"),
        "port": _Option(_port, "server", "port"),
        "public_url": _Option(_url, "config", "public_url"),
        "control_token": _Option(_string, "config", "control_token"),
    },
    "fake": {
        "seed": _Option(_integer, "config", "seed"),
        "profile": _Option(_choice(*PROFILES), "config", "profile"),
        "clock": _Option(_choice(*CLOCK_KINDS), "clock", "kind"),
        "time_scale": _Option(_non_negative, "clock", "speed"),
        "start_time": _Option(parse_time, "clock", "start"),
        "failure_rate": _Option(_probability, "config", "failure_rate"),
        "rate_limit": _Option(_boolean, "config", "rate_limit"),
        "journal_size": _Option(_count, "config", "journal_size"),
        "state": _Option(_string, "server", "state"),
    },
    "callbacks": {
        "webhook_secret": _Option(_secret, "config", "webhook_secret"),
        "https_only": _Option(_boolean, "config", "callback_https_only"),
        "allow_hosts": _Option(_array(_string, "an array of hosts"), "config", "callback_hosts"),
        "timeout": _Option(_positive, "delivery", "timeout"),
        "retries": _Option(
            _array(_non_negative, "an array of seconds"), "delivery", "retry_delays"
        ),
        "log_size": _Option(_count, "delivery", "log_size"),
    },
    "chaos": {
        "rate_429": _Option(_probability, "chaos", "rate_429"),
        "rate_503": _Option(_probability, "chaos", "rate_503"),
        "callback_faults": _Option(_fault_rates, "chaos", "callback_faults"),
    },
}
_KNOWN_SECTIONS = ", ".join([*_SECTIONS, "keys", "rules"])
_KEY_FIELDS: dict[str, _Check] = {
    "key": _api_key,
    "state": lambda value: KeyState(_choice(*(s.value for s in KeyState))(value)),
    "balance": _count,
    "webhook_secret": _secret,
}
