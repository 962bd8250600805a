"""Rules without HTTP: what each matcher matches, how rules are used up and combined, their JSON
form, and the prompt directives."""

from __future__ import annotations

from typing import Any

import pytest

from mock_server.delivery import CallbackFault, Fault
from mock_server.rules import (
    Action,
    Delay,
    DropConnection,
    Hang,
    HttpFault,
    Match,
    Outcome,
    RequestFacts,
    Rule,
    RuleError,
    Rules,
    TaskActions,
    TaskTiming,
    directives,
    parse_duration,
    rule_from_json,
)

KEY = "sk-test-alice"


def facts(
    method: str = "POST",
    path: str = "/v1/tasks",
    headers: dict[str, str] | None = None,
    api_key: str | None = KEY,
    model: str | None = "Nano-Banana-Pro",
    route: str | None = None,
    prompt: str | None = "a banana on black marble",
) -> RequestFacts:
    return RequestFacts(method, path, headers or {}, api_key, model, route, prompt)


# -- matchers -------------------------------------------------------------------------------------

MATCHING: list[tuple[str, Match, RequestFacts]] = [
    ("empty match", Match(), facts()),
    ("model", Match(model="Nano-Banana-Pro"), facts()),
    ("model with @route", Match(model="Nano-Banana-Pro"), facts(model="Nano-Banana-Pro@default")),
    (
        "model@route spelled in the rule",
        Match(model="Nano-Banana-Pro@default"),
        facts(model="Nano-Banana-Pro@default", route="default"),
    ),
    ("route", Match(route="default"), facts(route="default")),
    ("api_key", Match(api_key=KEY), facts()),
    ("prompt substring", Match(prompt="banana"), facts()),
    ("prompt_regex", Match(prompt_regex=r"^a \w+ on"), facts()),
    ("header", Match(headers={"X-Test-Case": "abc"}), facts(headers={"x-test-case": "abc"})),
    (
        "header substring, any name case",
        Match(headers={"x-TEST-case": "bc"}),
        facts(headers={"x-test-case": "zabcz"}),
    ),
    ("method", Match(method="POST"), facts()),
    ("method in lower case", Match(method="get"), facts(method="GET", path="/v1/tasks")),
    ("request method in lower case", Match(method="GET"), facts(method="get")),
    ("exact path", Match(path="/v1/tasks"), facts()),
    ("glob path", Match(path="/v1/tasks/*"), facts(method="GET", path="/v1/tasks/tk-hiapi-01")),
    (
        "every field at once",
        Match(
            model="Nano-Banana-Pro",
            route="default",
            api_key=KEY,
            prompt="banana",
            prompt_regex="marble$",
            headers={"X-Test-Case": "abc"},
            method="post",
            path="/v1/*",
        ),
        facts(headers={"x-test-case": "abc"}, route="default"),
    ),
]

NOT_MATCHING: list[tuple[str, Match, RequestFacts]] = [
    ("other model", Match(model="Other-Model"), facts()),
    ("model when none is known", Match(model="Nano-Banana-Pro"), facts(model=None)),
    ("model@route against the bare model", Match(model="Nano-Banana-Pro@default"), facts()),
    ("route", Match(route="default"), facts()),
    ("other route", Match(route="turbo"), facts(route="default")),
    ("other api_key", Match(api_key="sk-test-bob"), facts()),
    ("api_key when none was sent", Match(api_key=KEY), facts(api_key=None)),
    ("prompt absent from it", Match(prompt="apple"), facts()),
    ("prompt is case-sensitive", Match(prompt="Banana"), facts()),
    ("prompt when none is known", Match(prompt="banana"), facts(prompt=None)),
    ("prompt_regex", Match(prompt_regex=r"^banana"), facts()),
    ("header missing", Match(headers={"X-Test-Case": "abc"}), facts()),
    (
        "header other value",
        Match(headers={"X-Test-Case": "abc"}),
        facts(headers={"x-test-case": "xyz"}),
    ),
    ("method", Match(method="GET"), facts()),
    ("exact path is exact", Match(path="/v1/tasks"), facts(method="GET", path="/v1/tasks/tk-1")),
    ("glob needs the slash", Match(path="/v1/tasks/*"), facts(method="GET", path="/v1/tasks")),
    (
        "one field of several fails",
        Match(model="Nano-Banana-Pro", api_key=KEY, prompt="apple", method="POST"),
        facts(),
    ),
]


@pytest.mark.parametrize(("name", "match", "request_facts"), MATCHING, ids=[c[0] for c in MATCHING])
def test_matchers_match(name: str, match: Match, request_facts: RequestFacts) -> None:
    assert match.matches(request_facts), name


@pytest.mark.parametrize(
    ("name", "match", "request_facts"), NOT_MATCHING, ids=[c[0] for c in NOT_MATCHING]
)
def test_matchers_do_not_match(name: str, match: Match, request_facts: RequestFacts) -> None:
    assert not match.matches(request_facts), name


def test_only_body_fields_need_the_body() -> None:
    assert not Match(api_key=KEY, method="POST", path="/v1/tasks", headers={"a": "b"}).needs_body
    for match in (Match(model="m"), Match(route="r"), Match(prompt="p"), Match(prompt_regex="p")):
        assert match.needs_body


# -- times, kinds and order ------------------------------------------------------------------------


def test_a_rule_with_times_acts_that_often_then_is_spent() -> None:
    rules = Rules()
    rule = rules.add(Match(method="GET"), HttpFault(429, retry_after=7), times=3)
    get = facts(method="GET", path="/v1/tasks")
    assert (rule.live, rule.used) == (True, 0)
    assert [rules.take_request_action(get) for _ in range(4)] == [rule.action] * 3 + [None]
    assert (rule.live, rule.used) == (False, 3)
    assert not rules.has_request_rules


def test_a_request_that_does_not_match_does_not_use_a_rule() -> None:
    rules = Rules()
    rule = rules.add(Match(method="GET"), HttpFault(503, retry_after=1), times=1)
    assert rules.take_request_action(facts()) is None
    assert rule.used == 0 and rule.live


def test_a_rule_without_times_never_runs_out() -> None:
    rules = Rules()
    rule = rules.add(Match(), Outcome("fail"))
    for _ in range(50):
        assert rules.take_task_actions(facts()).outcome == Outcome("fail")
    assert (rule.used, rule.live, rule.times) == (50, True, None)


def test_the_first_live_rule_of_each_kind_wins_and_other_kinds_still_apply() -> None:
    rules = Rules()
    fail_first, fail_second = Outcome("fail", "FIRST", "first"), Outcome("fail", "SECOND", "s")
    timing, drop = TaskTiming(1, 2, 3), CallbackFault(Fault.DROP)
    first = rules.add(Match(), fail_first, times=1)
    second = rules.add(Match(), fail_second)
    rules.add(Match(), Outcome("success"))
    rules.add(Match(), timing)
    rules.add(Match(), drop)
    rules.add(Match(), CallbackFault(Fault.DUPLICATE))  # a later rule of a kind already taken

    assert rules.take_task_actions(facts()) == TaskActions(fail_first, timing, drop)
    assert [r.used for r in rules.list()] == [1, 0, 0, 1, 1, 0]

    # The first is spent: the second takes over; the other kinds are unchanged.
    assert rules.take_task_actions(facts()) == TaskActions(fail_second, timing, drop)
    assert [r.used for r in rules.list()] == [1, 1, 0, 2, 2, 0]
    assert not first.live and second.live


def test_a_rule_that_does_not_match_leaves_its_kind_to_a_later_one() -> None:
    rules = Rules()
    rules.add(Match(api_key="sk-test-bob"), Outcome("fail"))
    later = rules.add(Match(api_key=KEY), Outcome("success"))
    assert rules.take_task_actions(facts()).outcome is later.action


def test_request_and_task_actions_are_kept_apart() -> None:
    rules = Rules()
    outcome = rules.add(Match(), Outcome("fail"))
    rules.add(Match(), TaskTiming(1, 1, 1))
    fault = rules.add(Match(), HttpFault(503, retry_after=2))
    rules.add(Match(), Delay(0.1))
    assert rules.take_request_action(facts()) is fault.action
    found = rules.take_task_actions(facts())
    assert found.outcome is outcome.action
    assert not any(isinstance(a, HttpFault | Delay) for a in (found.timing, found.callback))
    assert fault.used == 1  # the task lookup did not touch the request rule


def test_the_first_live_request_rule_wins() -> None:
    rules = Rules()
    hang = rules.add(Match(path="/v1/tasks"), Hang(1), times=1)
    drop = rules.add(Match(), DropConnection())
    assert rules.take_request_action(facts()) is hang.action
    assert rules.take_request_action(facts()) is drop.action
    assert rules.take_request_action(facts(method="GET", path="/v1/tasks/x")) is drop.action


def test_task_actions_merge_keeps_the_earliest_of_each_kind() -> None:
    actions = TaskActions()
    for action in (
        Outcome("success"),
        Outcome("fail"),
        TaskTiming(1, 1, 1),
        TaskTiming(2, 2, 2),
        HttpFault(503),  # not a task action: ignored
        CallbackFault(Fault.REORDER),
        CallbackFault(Fault.DROP),
    ):
        actions.merge(action)
    assert actions == TaskActions(
        Outcome("success"), TaskTiming(1, 1, 1), CallbackFault(Fault.REORDER)
    )


def test_has_request_rules_and_need_body() -> None:
    rules = Rules()
    assert not rules.has_request_rules and not rules.need_body
    rules.add(Match(prompt="x"), Outcome("fail"))  # a task rule: neither
    assert not rules.has_request_rules and not rules.need_body
    rules.add(Match(method="GET"), HttpFault(503, retry_after=1))
    assert rules.has_request_rules and not rules.need_body
    body_rule = rules.add(Match(model="Nano-Banana-Pro"), Delay(0.1), times=1)
    assert rules.has_request_rules and rules.need_body
    assert rules.take_request_action(facts()) is body_rule.action  # the GET rule does not match
    assert rules.has_request_rules and not rules.need_body  # spent: no body needed any more


def test_list_delete_and_reset() -> None:
    rules = Rules()
    one = rules.add(Match(), Outcome())
    two = rules.add(Match(), Delay(1))
    assert [r.id for r in rules.list()] == ["rule-1", "rule-2"]
    assert rules.delete(one.id) and not rules.delete(one.id)
    assert rules.list() == [two]
    rules.reset()
    assert rules.list() == []
    assert rules.add(Match(), Outcome()).id == "rule-1"  # ids start again


def test_a_rule_needs_an_action_and_times_of_at_least_one() -> None:
    with pytest.raises(RuleError, match=r"^action:"):
        Rules().add(Match())
    with pytest.raises(RuleError, match=r"^times:"):
        Rules().add(Match(), Outcome(), times=0)


# -- JSON ------------------------------------------------------------------------------------------

ROUND_TRIPS: list[tuple[dict[str, Any], Action]] = [
    (
        {"type": "outcome", "status": "fail", "code": "CONTENT_POLICY", "message": "refused"},
        Outcome("fail", "CONTENT_POLICY", "refused"),
    ),
    ({"type": "outcome", "status": "success"}, Outcome("success")),
    (
        {"type": "timing", "queued": 1, "handling": 2.5, "archiving": 0},
        TaskTiming(1, 2.5, 0),
    ),
    (
        {"type": "http", "status": 429, "error_code": "SLOW", "message": "m", "retry_after": 7},
        HttpFault(429, "SLOW", "m", 7),
    ),
    ({"type": "http", "status": 500}, HttpFault(500)),
    ({"type": "delay", "seconds": 0.3}, Delay(0.3)),
    ({"type": "hang", "seconds": 5}, Hang(5)),
    ({"type": "hang"}, Hang()),
    ({"type": "drop_connection"}, DropConnection()),
    (
        {"type": "callback", "kind": "duplicate", "copies": 3},
        CallbackFault(Fault.DUPLICATE, copies=3),
    ),
    (
        {"type": "callback", "kind": "stale_timestamp", "stale_by": 301, "window": 5},
        CallbackFault(Fault.STALE_TIMESTAMP, window=5, stale_by=301),
    ),
]


@pytest.mark.parametrize(
    ("action_json", "action"), ROUND_TRIPS, ids=[str(c[0]["type"]) for c in ROUND_TRIPS]
)
def test_json_round_trip_of_every_action_type(action_json: dict[str, Any], action: Action) -> None:
    data = {
        "match": {"model": "Nano-Banana-Pro", "headers": {"X-Test-Case": "abc"}, "path": "/v1/*"},
        "action": action_json,
        "times": 2,
    }
    match, parsed, times = rule_from_json(data)
    assert parsed == action
    assert match == Match(model="Nano-Banana-Pro", headers={"X-Test-Case": "abc"}, path="/v1/*")
    shown = Rule("rule-9", match, parsed, times).to_json()
    assert shown["id"] == "rule-9" and shown["used"] == 0 and shown["times"] == 2
    assert shown["match"] == data["match"]
    # Every field is shown, defaults included, and what is shown reads back the same.
    assert shown["action"] == {**shown["action"], **action_json}
    assert set(shown["action"]) == {"type", *type(action).__dataclass_fields__}
    again = rule_from_json({k: shown[k] for k in ("match", "action", "times")})
    assert again == (match, parsed, times)


def test_an_empty_match_and_no_times_round_trip() -> None:
    match, action, times = rule_from_json({"action": {"type": "drop_connection"}})
    assert (match, action, times) == (Match(), DropConnection(), None)
    shown = Rule("rule-1", match, action, times).to_json()
    assert shown == {
        "id": "rule-1",
        "match": {},
        "action": {"type": "drop_connection"},
        "times": None,
        "used": 0,
    }


ACTION = {"type": "http", "status": 503, "retry_after": 1}
BAD_JSON: list[tuple[str, Any, str]] = [
    ("not an object", [1], "body:"),
    ("unknown top-level field", {"action": ACTION, "when": 1}, "body: unknown field(s) when"),
    ("no action", {"match": {}}, "action:"),
    ("action not an object", {"action": "http"}, "action:"),
    ("unknown match field", {"match": {"modle": "x"}, "action": ACTION}, "match: unknown field"),
    ("match not an object", {"match": "model", "action": ACTION}, "match: must be an object"),
    ("match value not a string", {"match": {"model": 7}, "action": ACTION}, "match.model:"),
    ("headers not an object", {"match": {"headers": "x"}, "action": ACTION}, "match.headers:"),
    ("bad regex", {"match": {"prompt_regex": "(["}, "action": ACTION}, "match.prompt_regex:"),
    ("unknown action type", {"action": {"type": "explode"}}, "action.type: unknown 'explode'"),
    ("status 418", {"action": {"type": "http", "status": 418}}, "action.status:"),
    ("status as text", {"action": {"type": "http", "status": "503"}}, "action.status:"),
    ("outcome status", {"action": {"type": "outcome", "status": "maybe"}}, "action.status:"),
    ("outcome code", {"action": {"type": "outcome", "code": 5}}, "action.code"),
    ("retry_after text", {"action": {**ACTION, "retry_after": "7"}}, "action.retry_after:"),
    ("negative delay", {"action": {"type": "delay", "seconds": -1}}, "action.seconds:"),
    ("delay as text", {"action": {"type": "delay", "seconds": "1"}}, "action.seconds:"),
    ("negative hang", {"action": {"type": "hang", "seconds": -0.5}}, "action.seconds:"),
    ("negative timing", {"action": {"type": "timing", "handling": -1}}, "action.handling:"),
    ("delay without seconds", {"action": {"type": "delay"}}, "seconds"),
    ("unknown action field", {"action": {**ACTION, "colour": "red"}}, "colour"),
    ("bad callback kind", {"action": {"type": "callback", "kind": "lose"}}, "action.kind:"),
    ("callback without kind", {"action": {"type": "callback"}}, "kind"),
    (
        "callback copies 0",
        {"action": {"type": "callback", "kind": "duplicate", "copies": 0}},
        "copies",
    ),
    ("times as text", {"action": ACTION, "times": "3"}, "times:"),
    ("times fractional", {"action": ACTION, "times": 1.5}, "times:"),
    ("times boolean", {"action": ACTION, "times": True}, "times:"),
]


@pytest.mark.parametrize(("name", "data", "named"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_bad_json_is_refused_naming_the_field(name: str, data: Any, named: str) -> None:
    with pytest.raises(RuleError) as refused:
        rule_from_json(data)
    assert named in str(refused.value), (name, str(refused.value))


@pytest.mark.parametrize("times", [0, -2])
def test_times_below_one_is_refused_when_added(times: int) -> None:
    with pytest.raises(RuleError, match=r"^times: must be at least 1"):
        Rules().add_json({"action": ACTION, "times": times})


# Values of the wrong type that are accepted today and only break later, when a request or a
# delivery meets the rule (see each case).
LATE_FAILURES: list[tuple[str, dict[str, Any], str]] = [
    # `in` on a non-string: every /v1 request then ends in a 500 (TypeError in Match.matches).
    ("header value not a string", {"match": {"headers": {"X-Test": 1}}}, "match.headers"),
    # Retry-After: -1 is sent, which openapi.yaml's Retry-After pattern refuses.
    ("negative retry_after", {"action": {**ACTION, "retry_after": -1}}, "action.retry_after"),
    # error_code 5 is sent as a number, which the ErrorEnvelope schema refuses.
    ("error_code not a string", {"action": {**ACTION, "error_code": 5}}, "action.error_code"),
    # range(1, 3.5) raises in the scheduler: the callback is never delivered.
    (
        "fractional copies",
        {"action": {"type": "callback", "kind": "duplicate", "copies": 2.5}},
        "action.copies",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "named"), LATE_FAILURES, ids=[c[0] for c in LATE_FAILURES]
)
def test_values_of_the_wrong_type_are_refused_up_front(
    name: str, data: dict[str, Any], named: str
) -> None:
    body = {"action": ACTION, **data}
    with pytest.raises(RuleError) as refused:
        rule_from_json(body)
    assert named in str(refused.value), name


# -- prompt directives ----------------------------------------------------------------------------

DIRECTIVES: list[tuple[str, Action]] = [
    ("[mock:fail]", Outcome("fail", "TASK_FAILED", "upstream rejected the prompt")),
    (
        "[mock:fail=CONTENT_POLICY]",
        Outcome("fail", "CONTENT_POLICY", "upstream rejected the prompt"),
    ),
    (
        "[mock:fail=CONTENT_POLICY:no bananas: ever]",
        Outcome("fail", "CONTENT_POLICY", "no bananas: ever"),
    ),
    ("[mock:succeed]", Outcome("success")),
    ("[mock:callback=drop]", CallbackFault(Fault.DROP)),
    ("[mock:callback=duplicate]", CallbackFault(Fault.DUPLICATE)),
    ("[mock:callback=duplicate:3]", CallbackFault(Fault.DUPLICATE, copies=3)),
    ("[mock:callback=delay:90s]", CallbackFault(Fault.DELAY, delay=90.0)),
    ("[mock:callback=delay]", CallbackFault(Fault.DELAY)),
    ("[mock:callback=reorder]", CallbackFault(Fault.REORDER)),
    ("[mock:callback=bad_signature]", CallbackFault(Fault.BAD_SIGNATURE)),
    ("[mock:callback=stale_timestamp]", CallbackFault(Fault.STALE_TIMESTAMP)),
    ("[mock:http=503]", HttpFault(503)),
    ("[mock:http=429:7]", HttpFault(429, retry_after=7)),
]


@pytest.mark.parametrize(("written", "action"), DIRECTIVES, ids=[c[0] for c in DIRECTIVES])
def test_every_directive(written: str, action: Action) -> None:
    assert directives(f"a banana {written} on marble") == [action]


@pytest.mark.parametrize(
    ("written", "total"),
    [("90s", 90.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("45", 45.0)],
)
def test_delay_directive_spreads_its_total_over_the_task(written: str, total: float) -> None:
    (timing,) = directives(f"[mock:delay={written}]")
    assert isinstance(timing, TaskTiming)
    assert timing.queued + timing.handling + timing.archiving == pytest.approx(total)
    assert 0 < timing.queued < timing.handling and 0 < timing.archiving < timing.handling


def test_several_directives_in_one_prompt_in_order() -> None:
    found = directives("[mock:callback=drop] hero [mock:fail=X:y] shot [mock:delay=10s]")
    assert found == [CallbackFault(Fault.DROP), Outcome("fail", "X", "y"), TaskTiming(1, 8, 1)]


def test_a_prompt_without_directives_has_none() -> None:
    assert directives("a banana [mock] mock:fail [not:mock] [mock:]") == []


def test_directives_ignore_case() -> None:
    assert directives("[MOCK:FAIL]") == [Outcome("fail")]


@pytest.mark.parametrize(
    "written",
    [
        "[mock:explode]",
        "[mock:explode=1]",
        "[mock:delay=soon]",
        "[mock:delay]",
        "[mock:delay=-5s]",
        "[mock:callback=lose]",
        "[mock:callback=duplicate:many]",
        "[mock:callback=duplicate:0]",
        "[mock:callback=delay:later]",
        "[mock:http=418]",
        "[mock:http=abc]",
        "[mock:http=429:soon]",
    ],
)
def test_a_bad_directive_is_a_rule_error_naming_input_prompt(written: str) -> None:
    with pytest.raises(RuleError) as refused:
        directives(f"a banana {written}")
    assert str(refused.value).startswith(f"input.prompt: {written}"), str(refused.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("1.5m", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("42", 42.0),
        (" 3 s ", 3.0),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1s", "5d", "1.2.3s", "s", "90 seconds"])
def test_parse_duration_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(RuleError, match="is not a duration"):
        parse_duration(text)
