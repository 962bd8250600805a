"""Configuration files: every key lands in its field, and every mistake names the file and key."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server.backend import Backend
from mock_server.clock import DEFAULT_START, ManualClock
from mock_server.config import KeyPolicy, KeyState, MockConfig
from mock_server.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Settings,
    SettingsError,
    check_option,
    load_settings,
)

from ..conftest import PAGE_EXAMPLE, auth

EXAMPLE = Path(__file__).parents[2] / "examples" / "mock.toml"
MARCH = 1_772_323_200.0  # 2026-03-01T00:00:00Z
SECRET = "whsec_0123456789abcdef"
FAIL_RULE = (
    '[[rules]]\nmatch = { prompt = "[fail-me]" }\n'
    'action = { type = "outcome", status = "fail", code = "CONTENT_REJECTED" }\n'
)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "mock.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def client_for() -> Iterator[Callable[[Settings], TestClient]]:
    """In-process clients for apps built from settings; their backends closed at teardown."""
    opened: list[TestClient] = []

    def client_for(settings: Settings) -> TestClient:
        client = TestClient(settings.create_app(), raise_server_exceptions=True)
        opened.append(client)
        return client

    yield client_for
    for client in opened:
        backend(client).close()
        client.close()


def backend(client: TestClient) -> Backend:
    app = client.app
    assert isinstance(app, Starlette)
    found: Backend = app.state.backend
    return found


Read = Callable[[Settings], Any]
MAPPINGS: list[tuple[str, str, Read, Any]] = [
    ("[server]", 'host = "0.0.0.0"', lambda s: s.host, "0.0.0.0"),
    ("[server]", "port = 9001", lambda s: s.port, 9001),
    ("[server]", 'public_url = "http://fake:1"', lambda s: s.config.public_url, "http://fake:1"),
    ("[server]", 'control_token = "t0k"', lambda s: s.config.control_token, "t0k"),
    ("[fake]", "seed = 7", lambda s: s.config.seed, 7),
    ("[fake]", 'profile = "realistic"', lambda s: s.config.profile_timing().name, "realistic"),
    (
        "[fake]",
        'clock = "manual"',
        lambda s: (s.clock_kind, s.clock.speed, s.clock.now()),
        ("manual", 0.0, DEFAULT_START),
    ),
    ("[fake]", "time_scale = 5", lambda s: (s.clock_kind, s.clock.speed), ("real", 5.0)),
    ("[fake]", 'start_time = "2026-03-01T00:00:00Z"', lambda s: s.clock.start, MARCH),
    ("[fake]", 'start_time = "2026-03-01T01:00:00+01:00"', lambda s: s.clock.start, MARCH),
    ("[fake]", 'start_time = "2026-03-01 00:00:00"', lambda s: s.clock.start, MARCH),  # UTC
    ("[fake]", "start_time = 2026-03-01T00:00:00Z", lambda s: s.clock.start, MARCH),
    ("[fake]", "start_time = 1772323200", lambda s: s.clock.start, MARCH),
    ("[fake]", "failure_rate = 0.25", lambda s: s.config.failure_rate, 0.25),
    ("[fake]", "rate_limit = true", lambda s: s.config.rate_limit_enforced(), True),
    ("[fake]", "journal_size = 5", lambda s: s.config.journal_size, 5),
    ("[callbacks]", f'webhook_secret = "{SECRET}"', lambda s: s.config.webhook_secret, SECRET),
    ("[callbacks]", "https_only = true", lambda s: s.config.callback_https_only, True),
    (
        "[callbacks]",
        'allow_hosts = ["127.0.0.1", "*.example.com"]',
        lambda s: s.config.callback_hosts,
        ("127.0.0.1", "*.example.com"),
    ),
    ("[callbacks]", "timeout = 2.5", lambda s: s.config.delivery.timeout, 2.5),
    ("[callbacks]", "retries = [1, 2.5]", lambda s: s.config.delivery.retry_delays, (1.0, 2.5)),
    ("[callbacks]", "retries = []", lambda s: s.config.delivery.attempts, 1),
    ("[chaos]", "rate_429 = 0.1", lambda s: s.config.chaos.rate_429, 0.1),
    ("[chaos]", "rate_503 = 0.2", lambda s: s.config.chaos.rate_503, 0.2),
    (
        "[chaos]",
        "callback_faults = { drop = 0.05, duplicate = 0.1 }",
        lambda s: dict(s.config.chaos.callback_faults),
        {"drop": 0.05, "duplicate": 0.1},
    ),
]


@pytest.mark.parametrize(
    ("section", "line", "read", "expected"),
    MAPPINGS,
    ids=[
        f"{section[1:-1]}.{line.split(' ')[0]}={line.split('= ')[1]}"
        for section, line, *_ in MAPPINGS
    ],
)
def test_each_key_sets_its_field(
    write: Callable[[str], Path], section: str, line: str, read: Read, expected: Any
) -> None:
    assert read(load_settings(write(f"{section}\n{line}\n"))) == expected


def test_with_nothing_set_the_fake_has_its_defaults(write: Callable[[str], Path]) -> None:
    for settings in (load_settings(write("")), load_settings()):
        assert (settings.host, settings.port) == (DEFAULT_HOST, DEFAULT_PORT)
        assert settings.config == MockConfig()
        assert not settings.config.rate_limit_enforced()
        assert (settings.clock_kind, settings.clock.speed, settings.rules) == ("real", 1.0, ())
        assert abs(settings.clock.now() - time.time()) < 60  # a real clock starts now
    assert load_settings(write("")).source == str(write(""))
    assert load_settings().source is None


def test_the_realistic_profile_enforces_rate_limits_unless_told_not_to(
    write: Callable[[str], Path],
) -> None:
    realistic = '[fake]\nprofile = "realistic"\n'
    assert load_settings(write(realistic)).config.rate_limit_enforced()
    assert not load_settings(write(realistic + "rate_limit = false\n")).config.rate_limit_enforced()


def test_a_manual_clock_starts_where_told_and_ignores_the_time_scale(
    write: Callable[[str], Path],
) -> None:
    settings = load_settings(
        write('[fake]\nclock = "manual"\ntime_scale = 10\nstart_time = "2026-03-01T00:00:00Z"')
    )
    assert isinstance(settings.clock, ManualClock)
    assert (settings.clock.now(), settings.clock.speed) == (MARCH, 0.0)
    settings.clock.advance(30)
    assert settings.clock.now() == MARCH + 30


def test_keys_become_the_only_keys_with_their_policies(write: Callable[[str], Path]) -> None:
    settings = load_settings(
        write(
            '[[keys]]\nkey = "sk-alice"\n'
            '[[keys]]\nkey = "sk-bob"\nstate = "forbidden"\nbalance = 3\n'
            f'webhook_secret = "{SECRET}"\n'
            '[[keys]]\nkey = "sk-carol"\nstate = "revoked"\n'
        )
    )
    assert settings.config.keys == {
        "sk-alice": KeyPolicy(),
        "sk-bob": KeyPolicy(KeyState.FORBIDDEN, balance=3, webhook_secret=SECRET),
        "sk-carol": KeyPolicy(KeyState.REVOKED),
    }
    assert settings.config.signing_key("sk-bob") == SECRET


def test_rules_are_kept_as_json_and_added_to_the_app(
    write: Callable[[str], Path], client_for: Callable[[Settings], TestClient]
) -> None:
    settings = load_settings(write('[fake]\nclock = "manual"\n' + FAIL_RULE + "times = 2\n"))
    assert settings.rules == (
        {
            "match": {"prompt": "[fail-me]"},
            "action": {"type": "outcome", "status": "fail", "code": "CONTENT_REJECTED"},
            "times": 2,
        },
    )
    client = client_for(settings)
    body = {**PAGE_EXAMPLE, "input": {**PAGE_EXAMPLE["input"], "prompt": "a [fail-me] banana"}}
    task_id = client.post("/v1/tasks", json=body, headers=auth()).json()["data"]["taskId"]
    client.post("/_mock/clock/advance", json={"seconds": 60})
    task = client.get(f"/v1/tasks/{task_id}", headers=auth()).json()["data"]
    assert (task["status"], task["error"]["code"]) == ("fail", "CONTENT_REJECTED")


def test_reset_brings_the_files_rules_back_but_deleting_rules_empties_them(
    write: Callable[[str], Path], client_for: Callable[[Settings], TestClient]
) -> None:
    client = client_for(load_settings(write(FAIL_RULE + "times = 1\n")))
    body = {**PAGE_EXAMPLE, "input": {**PAGE_EXAMPLE["input"], "prompt": "[fail-me]"}}
    assert client.post("/v1/tasks", json=body, headers=auth()).status_code == 200
    assert backend(client).rules.list()[0].used == 1  # spent
    client.post("/_mock/rules", json={"action": {"type": "http", "status": 503}})
    client.post("/_mock/reset")
    rules = client.get("/_mock/rules").json()["data"]["rules"]
    assert [(r["id"], r["action"]["code"], r["used"]) for r in rules] == [
        ("rule-1", "CONTENT_REJECTED", 0)
    ]
    client.delete("/_mock/rules")
    assert client.get("/_mock/rules").json()["data"]["rules"] == []


def test_overrides_replace_values_key_by_key_and_arrays_whole(
    write: Callable[[str], Path],
) -> None:
    path = write(
        '[fake]\nseed = 7\nprofile = "realistic"\n[callbacks]\nhttps_only = true\n'
        '[[keys]]\nkey = "sk-file"\n'
    )
    settings = load_settings(
        path,
        {
            "fake": {"seed": 9},
            "callbacks": {"https_only": False},
            "keys": [{"key": "sk-flag"}],
        },
    )
    assert (settings.config.seed, settings.config.profile) == (9, "realistic")
    assert settings.config.callback_https_only is False
    assert list(settings.config.keys) == ["sk-flag"]
    assert settings.source == str(path)


def test_the_example_file_loads_as_documented(
    client_for: Callable[[Settings], TestClient],
) -> None:
    settings = load_settings(EXAMPLE)
    assert (settings.clock_kind, settings.config.seed, settings.config.profile) == (
        "manual",
        7,
        "fast",
    )
    assert set(settings.config.keys) == {"sk-alice", "sk-bob", "sk-revoked"}
    client = client_for(settings)
    assert len(backend(client).rules.list()) == len(settings.rules) == 3
    assert client.get("/v1/tasks", headers=auth("sk-revoked")).status_code == 401
    assert client.get("/v1/tasks", headers=auth("sk-alice")).status_code == 200


ERRORS: list[tuple[str, str]] = [
    ("[fak]\nseed = 1", "fak: unknown section; known: server, fake, callbacks, chaos, keys, rules"),
    ("seed = 1", "seed: unknown section (it belongs in [fake])"),
    ("fake = 1", "fake: must be a table [fake], not an integer"),
    ("[fake]\nsede = 1", "fake.sede: unknown key; known: seed, profile, clock,"),
    ("[server]\nseed = 1", "server.seed: unknown key (it belongs in [fake])"),
    ('[fake]\nseed = "7"', "fake.seed: must be an integer, not a string"),
    ("[fake]\nseed = true", "fake.seed: must be an integer, not a boolean"),
    ("[server]\nport = 80.5", "server.port: must be an integer, not a float"),
    ("[server]\nport = 70000", "server.port: must be a TCP port from 1 to 65535, not 70000"),
    ('[server]\npublic_url = "fake:8000"', "server.public_url: must be an http:// or https://"),
    ('[server]\ncontrol_token = ""', "server.control_token: must not be empty"),
    ('[fake]\nclock = "wall"', "fake.clock: must be one of real, manual, not 'wall'"),
    ('[fake]\nprofile = "slow"', "fake.profile: must be one of "),
    ("[fake]\ntime_scale = -1", "fake.time_scale: must be 0 or more, not -1"),
    ("[fake]\ntime_scale = inf", "fake.time_scale: must be a finite number, not inf"),
    ('[fake]\nstart_time = "yesterday"', "fake.start_time: must be Unix seconds or an ISO 8601"),
    (
        "[fake]\nstart_time = 2026-03-01",
        "fake.start_time: must be Unix seconds or an ISO 8601 time such as "
        "2026-01-01T00:00:00Z, not a date",
    ),
    ("[fake]\nfailure_rate = 2", "fake.failure_rate: must be between 0 and 1, not 2"),
    ('[fake]\nrate_limit = "on"', "fake.rate_limit: must be true or false, not a string"),
    ("[fake]\njournal_size = -1", "fake.journal_size: must be 0 or more, not -1"),
    ('[callbacks]\nwebhook_secret = "short"', "callbacks.webhook_secret: a webhook signing key"),
    ("[callbacks]\ntimeout = 0", "callbacks.timeout: must be more than 0, not 0"),
    ("[callbacks]\nretries = 60", "callbacks.retries: must be an array of seconds, not an integer"),
    ("[callbacks]\nretries = [60, -1]", "callbacks.retries[1]: must be 0 or more, not -1"),
    ("[callbacks]\nallow_hosts = [1]", "callbacks.allow_hosts[0]: must be a string"),
    ("[chaos]\ncallback_faults = { dorp = 0.1 }", "chaos.callback_faults.dorp: unknown callback"),
    ("[chaos]\ncallback_faults = { drop = 1.5 }", "chaos.callback_faults.drop: must be between"),
    ("[chaos]\nrate_429 = 0.6\nrate_503 = 0.6", "chaos.rate_429 + chaos.rate_503: must add up"),
    ('[keys]\nkey = "sk-a"', "keys: must be an array of tables [[keys]]"),
    ("[[keys]]\nstate = 'active'", "keys[0].key: is required"),
    ('[[keys]]\nkey = "alice"', "keys[0].key: must look like sk-..., not 'alice'"),
    ('[[keys]]\nkey = "sk-a"\n[[keys]]\nkey = "sk-a"', "keys[1].key: 'sk-a' is listed twice"),
    ('[[keys]]\nkey = "sk-a"\nstate = "paused"', "keys[0].state: must be one of active, revoked"),
    ('[[keys]]\nkey = "sk-a"\nbalance = -1', "keys[0].balance: must be 0 or more, not -1"),
    ('[[keys]]\nkey = "sk-a"\nsecret = "x"', "keys[0].secret: unknown key; known: key, state"),
    ('[[keys]]\nkey = "sk-a"\nwebhook_secret = "short"', "keys[0].webhook_secret: a webhook"),
    ("rules = [1]", "rules[0]: must be a table, not an integer"),
    (
        FAIL_RULE + '[[rules]]\naction = { type = "outcome", status = "maybe" }',
        "rules[1].action.status: must be success or fail",
    ),
    (FAIL_RULE + "when = 1", "rules[0]: unknown field(s) when"),
    (FAIL_RULE + "times = 0", "rules[0].times: must be at least 1"),
    ('[[rules]]\nmatch = { modle = "x" }\naction = { type = "hang" }', "rules[0].match: unknown"),
    ("[[rules]]\nmatch = {}", "rules[0].action: must be an object with a type"),
    ("[fake\nseed = 1", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m.split(":")[0] for _, m in ERRORS])
def test_mistakes_name_the_file_and_the_key(
    write: Callable[[str], Path], text: str, message: str
) -> None:
    path = write(text)
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    assert str(raised.value).startswith(f"{path}: {message}")
    assert isinstance(raised.value, ValueError)


def test_a_missing_file_is_named() -> None:
    with pytest.raises(SettingsError, match=r"^/nowhere/mock\.toml: cannot read"):
        load_settings("/nowhere/mock.toml")


def test_bad_overrides_are_blamed_on_the_command_line(write: Callable[[str], Path]) -> None:
    with pytest.raises(SettingsError, match=r"^command line: fake\.seed: must be an integer"):
        load_settings(write("[fake]\nseed = 1"), {"fake": {"seed": "x"}})


def test_check_option_checks_a_value_as_the_file_would() -> None:
    assert check_option("callbacks.retries", [1, 2]) == (1.0, 2.0)
    assert check_option("keys.key", "sk-a") == "sk-a"
    with pytest.raises(ValueError, match=r"^drop: must be between 0 and 1"):
        check_option("chaos.callback_faults", {"drop": 2.0})
