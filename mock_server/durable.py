"""Rules that save themselves to a durable store's `Persistence`, and come back after a restart.

A snapshot (each rule's JSON form with its use count, and the next rule number) is saved after
every change and every use, so a rule with `times: 2` used once before a crash acts once more
after it, and new rules never reuse the number of a deleted one.

    >>> from mock_server.rules import Outcome
    >>> class Keep:
    ...     snapshot = None
    ...     def save_rules(self, snapshot): self.snapshot = snapshot
    >>> keep = Keep()
    >>> rules = SavedRules(keep)
    >>> rules.add(action=Outcome(), times=2).id
    'rule-1'
    >>> again = SavedRules(keep)
    >>> again.restore(keep.snapshot)
    >>> [(r.id, r.times, r.used) for r in again.list()], again.add(action=Outcome()).id
    ([('rule-1', 2, 0)], 'rule-2')
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from .rules import (
    Action,
    Match,
    RequestAction,
    RequestFacts,
    Rule,
    Rules,
    TaskActions,
    rule_from_json,
)

__all__ = ["RuleSaver", "SavedRules", "rules_for"]


class RuleSaver(Protocol):
    def save_rules(self, snapshot: Mapping[str, Any]) -> None: ...


class SavedRules(Rules):
    """`Rules` that hand a snapshot to `saver` after every add, delete, reset and use."""

    def __init__(self, saver: RuleSaver) -> None:
        super().__init__()
        self._saver = saver
        self._next_id = 1
        self._saving = threading.Lock()

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Put back the rules of a snapshot, with their ids and use counts."""
        Rules.reset(self)
        for saved in snapshot["rules"]:
            fields = {name: saved[name] for name in ("match", "action", "times")}
            rule = Rules.add(self, *rule_from_json(fields))
            rule.id, rule.used = saved["id"], saved["used"]
        self._next_id = int(snapshot["next_id"])
        # New rules go on from the saved numbering (Rules numbers them from this counter).
        self._ids = itertools.count(self._next_id)

    def add(
        self, match: Match | None = None, action: Action | None = None, times: int | None = None
    ) -> Rule:
        rule = super().add(match, action, times)
        number = rule.id.rpartition("-")[2]
        if number.isdigit():
            self._next_id = max(self._next_id, int(number) + 1)
        self._save()
        return rule

    def delete(self, rule_id: str) -> bool:
        found = super().delete(rule_id)
        if found:
            self._save()
        return found

    def reset(self) -> None:
        super().reset()
        self._next_id = 1
        self._save()

    def take_request_action(self, facts: RequestFacts) -> RequestAction | None:
        action = super().take_request_action(facts)
        if action is not None:
            self._save()
        return action

    def take_task_actions(
        self, facts: RequestFacts, already: TaskActions | None = None
    ) -> TaskActions:
        found = super().take_task_actions(facts, already)
        if any(kind is not None for kind in (found.outcome, found.timing, found.callback)):
            self._save()
        return found

    def snapshot(self) -> dict[str, Any]:
        return {"next_id": self._next_id, "rules": [rule.to_json() for rule in self.list()]}

    def _save(self) -> None:
        # One at a time, so snapshots reach the store in the order they were taken.
        with self._saving:
            self._saver.save_rules(self.snapshot())


def rules_for(saver: RuleSaver | None, saved: Mapping[str, Any] | None) -> tuple[Rules, bool]:
    """The rules to start with, and whether they came back from a snapshot (then the
    configured starting scenario is not added again)."""
    if saver is None:
        return Rules(), False
    rules = SavedRules(saver)
    if saved is None:
        return rules, False
    rules.restore(saved)
    return rules, True
