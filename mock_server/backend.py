"""The fake's domain: create, read and list tasks, serve their files. No HTTP here.

The routes in `app` parse a request, call one method of `Backend`, and render what it returns;
every refusal is a `MockError` raised from here.

    >>> import asyncio
    >>> from mock_server.clock import ManualClock
    >>> backend = Backend(MockConfig(profile="instant"), clock=ManualClock())
    >>> body = {"model": "Nano-Banana-Pro", "input": {"prompt": "a banana"}}
    >>> task_id, replayed = asyncio.run(backend.create("sk-demo", body, None, "http://fake"))
    >>> backend.task("sk-demo", task_id)["status"]
    'success'
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import math
from collections.abc import Callable
from typing import Any

from .callbacks import Callbacks
from .catalog import Catalog, Timing, catalog
from .clock import Clock, ManualClock, RealClock
from .config import (
    OUTPUT_TTL,
    KeyState,
    MockConfig,
)
from .delivery import CallbackFault, Fault, Outgoing
from .durable import rules_for
from .errors import (
    Forbidden,
    InsufficientBalance,
    InvalidRequest,
    MockError,
    NotFound,
    Unauthorized,
    error_for_status,
)
from .idempotency import Idempotency
from .image_cache import ImageCache
from .journal import Journal
from .lifecycle import FAIL, STATUSES, SUCCESS, TERMINAL, Timeline, plan
from .outputs import Outputs
from .randomness import MockRandom
from .ratelimit import RateLimiter
from .rules import HttpFault, RequestFacts, RuleError, TaskActions, directives
from .scheduler import Scheduler
from .spec import Spec, spec
from .store import MemoryStore, Persistence, Store, TaskRecord
from .validation import CreateRequest, parse_create

__all__ = ["Backend", "staged_error"]

_FAILURE = ("TASK_FAILED", "upstream rejected the prompt")
_RENDERED_KEPT = 4096
_DEFAULT_PAGE, _DEFAULT_SIZE, _MAX_SIZE, _MAX_PAGE = 1, 20, 100, 2**31 - 1


class Backend:
    """One fake HiAPI account system: keys, tasks, outputs, on one clock and one seed."""

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        models: Catalog | None = None,
    ) -> None:
        self.config = config or MockConfig()
        self.clock: Clock = clock or RealClock()
        self.random = MockRandom(self.config.seed)
        self.catalog = models or catalog()
        self.spec: Spec = spec()
        self.store: Store = store if store is not None else MemoryStore()  # an empty store is falsy
        self.images = ImageCache(self.config.image_cache_bytes)
        self.outputs = Outputs(self.store, self.clock, self.images)
        self.idempotency = Idempotency(self.store, self.clock)
        persistence = self.store.persistence
        saved = persistence.saved if persistence is not None else None
        self.rules, restored = rules_for(persistence, saved.rules if saved else None)
        if not restored:
            self._start_scenario()
        self.journal = Journal(self.config.journal_size)
        # Staged bad days draw from a stream of their own, so turning them on changes no id.
        self.chaos_random = MockRandom(self.config.seed + 7919)
        self.profile = self.config.profile_timing()
        self.limiter = RateLimiter(
            self.clock,
            per_minute=self.config.requests_per_minute,
            concurrent=self.config.concurrent_requests,
            enforce=self.config.rate_limit_enforced(),
        )
        self._balances = {k: p.balance for k, p in self.config.keys.items()}
        delivery = self.config.delivery
        self.scheduler = Scheduler(self.clock, concurrency=delivery.concurrency)
        self.callbacks = Callbacks(self.scheduler, self._outgoing, delivery, outbox=persistence)
        # (when an output expires, its task): to drop cached images of expired outputs.
        self._expiring: list[tuple[float, str]] = []
        # task id -> (timeline, error, status, JSON): a task polled again unchanged is not
        # rendered again (see task_json).
        self._rendered: dict[str, tuple[Timeline, tuple[str, str] | None, str, bytes]] = {}
        self._unwatch_clock: Callable[[], None] | None = None
        if persistence is not None:
            self._take_up(persistence)

    def reset(self) -> None:
        """Forget every task, rule, request, delivery and key use; the clock and the seed
        start again."""
        self.callbacks.reset()
        self.rules.reset()
        self._start_scenario()
        self.journal.reset()
        self.limiter.reset()
        self.store.reset()
        self.images.reset()
        self._expiring.clear()
        self._rendered = {}
        self.clock.reset()
        self.random.reset()
        self.chaos_random.reset()
        self._balances = {k: p.balance for k, p in self.config.keys.items()}

    def _start_scenario(self) -> None:
        # The configured rules are the starting scenario: a reset brings them back.
        for rule in self.config.rules:
            self.rules.add_json(rule)

    def _take_up(self, persistence: Persistence) -> None:
        """Go on where the store's earlier runs stopped: their clock, their balances, their
        owed callbacks (the rules are back already), and save the clock from now on."""
        saved = persistence.saved
        if isinstance(self.clock, ManualClock):
            if saved.clock is not None:
                self.clock.resume(saved.clock)
            persistence.save_clock(self.clock.reading())
            self._unwatch_clock = self.clock.on_change(persistence.save_clock)
        if saved.opened:
            # Drawn again from the seed's start, the streams would repeat ids already given:
            # after a restart they start afresh, from the seed and the restart's number.
            self.random.seed(f"{self.config.seed}/{saved.opened}")
            self.chaos_random.seed(f"{self.chaos_random.initial_seed}/{saved.opened}")
        for key, left in self._balances.items():
            if left is not None:
                self._balances[key] = max(left - self.store.count(key), 0)
        for task in self.store:  # so images of their outputs, once cached, are dropped in time
            self._expires(task)
        self.callbacks.resume(saved.deliveries)

    def close(self) -> None:
        """Stop the scheduler's thread (queued deliveries are abandoned; a durable store
        keeps them owed), then close the store."""
        self.scheduler.close()
        if self._unwatch_clock is not None:
            self._unwatch_clock()
        self.store.close()

    # -- keys --------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> str:
        """The API key of an `Authorization` header, or 401/403."""
        if not authorization:
            raise Unauthorized("missing API key: send Authorization: Bearer sk-...")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key.startswith("sk-") or len(key) < 4:
            raise Unauthorized("invalid API key: expected Authorization: Bearer sk-...")
        if not self.config.keys:
            return key
        policy = self.config.keys.get(key)
        if policy is None:
            raise Unauthorized("invalid API key")
        if policy.state is KeyState.REVOKED:
            raise Unauthorized("this API key has been revoked")
        if policy.state is KeyState.FORBIDDEN:
            raise Forbidden("this API key lacks permission for this operation")
        return key

    # -- create ------------------------------------------------------------------------------

    async def create(
        self,
        owner: str,
        body: Any,
        idempotency_key: str | None,
        base_url: str,
        facts: RequestFacts | None = None,
    ) -> tuple[str, bool]:
        """Accept a task; returns (task id, whether this replays an earlier create).

        `facts` (the request as rules see it) lets header and path matchers of task rules
        apply; without them only the body is matched.
        """
        request = self.parse(body)
        self._sweep()
        if idempotency_key is None:
            actions = self._task_actions(owner, request, facts)
            task_id = await self._accept(owner, request, base_url, actions)
            await self.store.flush()  # accepted means saved: answered only once durable
            return task_id, False
        # Only a create with a key needs its body's fingerprint: off the common path.
        replay = self.idempotency.claim(owner, idempotency_key, body)
        if replay is not None:
            return replay, True
        try:
            actions = self._task_actions(owner, request, facts)
            task_id = await self._accept(owner, request, base_url, actions)
        except BaseException:
            self.idempotency.release(owner, idempotency_key)
            raise
        self.idempotency.made(owner, idempotency_key, task_id)
        await self.store.flush()
        return task_id, False

    def _sweep(self) -> None:
        """Forget idempotency records past their 24 h, and drop cached images of outputs past
        their `expireAt` (a download of one drops it too). Both look only at their oldest
        entry, so a create pays nothing when nothing expired."""
        self.idempotency.prune()
        now = self.clock.now()
        while self._expiring and self._expiring[0][0] <= now:
            self.images.discard(heapq.heappop(self._expiring)[1])

    def parse(self, body: Any) -> CreateRequest:
        """Validate a create body against the model's schema in `openapi.yaml`."""
        return parse_create(body, self.catalog, self.spec, self.config)

    def _task_actions(
        self, owner: str, request: CreateRequest, facts: RequestFacts | None
    ) -> TaskActions:
        """What the prompt's directives, then the rules, then the chaos settings ask of the
        task; the first of each kind wins. A directive's HTTP fault is raised here."""
        prompt = str(request.params.get("prompt", ""))
        actions = TaskActions()
        try:
            found = directives(prompt)
        except RuleError as exc:
            raise InvalidRequest(str(exc)) from None
        for directive in found:
            if isinstance(directive, HttpFault):
                raise staged_error(directive)
            actions.merge(directive)
        base = facts or RequestFacts("POST", "/v1/tasks", {})
        facts = RequestFacts(
            base.method, base.path, base.headers, owner, request.wire_model, request.route, prompt
        )
        ruled = self.rules.take_task_actions(facts, already=actions)
        for action in (ruled.outcome, ruled.timing, ruled.callback):
            if action is not None:
                actions.merge(action)
        if request.callback_url is not None:
            chaos = self._chaos_callback_fault()
            if chaos is not None:
                actions.merge(chaos)
        return actions

    def _chaos_callback_fault(self) -> CallbackFault | None:
        draw = self.chaos_random.random()
        for kind, rate in self.config.chaos.callback_faults.items():
            if draw < rate:
                return CallbackFault(Fault(kind))
            draw -= rate
        return None

    async def _accept(
        self, owner: str, request: CreateRequest, base_url: str, actions: TaskActions
    ) -> str:
        self._charge(owner)
        if self.profile.accept > 0:
            await self.clock.sleep_until(self.clock.now() + self.profile.accept)
        created = self.clock.now()
        task_id = self.random.task_id(created)
        timing = self.profile.draw(request.model, request.params, self.random)
        failed = self.random.random() < self.config.failure_rate
        output = self.outputs.plan(request.model, request.params, self.random)
        if actions.timing is not None:
            timing = Timing(
                actions.timing.queued, actions.timing.handling, actions.timing.archiving
            )
        error = _FAILURE if failed else None
        if actions.outcome is not None:
            outcome = actions.outcome
            error = (outcome.code, outcome.message) if outcome.status == FAIL else None
        task = TaskRecord(
            task_id=task_id,
            owner=owner,
            model=request.wire_model,
            route=request.route,
            prompt=str(request.params.get("prompt", "")),
            timeline=plan(created, timing, error=error),
            error=error,
            output=output,
            callback_url=request.callback_url,
            base_url=self.config.public_url or base_url,
        )
        self.store.add(task)
        self._expires(task)
        if task.callback_url is not None:
            self._plan_callback(task, task.callback_url, actions.callback)
        return task_id

    def _expires(self, task: TaskRecord) -> None:
        expiry = int(task.timeline.finished) + OUTPUT_TTL
        if (
            task.output is not None
            and task.timeline.outcome == SUCCESS
            and expiry > self.clock.now()
        ):
            heapq.heappush(self._expiring, (expiry, task.task_id))

    def _plan_callback(self, task: TaskRecord, url: str, fault: CallbackFault | None) -> None:
        rule = self.config.callback_fault(url, task.prompt)
        chosen = fault or (rule.fault if rule is not None else None)
        if chosen is not None:
            self.callbacks.set_fault(task.task_id, chosen)
        self.callbacks.schedule(task.task_id, task.timeline.finished)

    def _outgoing(self, task_id: str) -> Outgoing | None:
        """The callback of a finished task: its URL, its exact body and its signing key."""
        task = self.store.get(task_id)
        if task is None or task.callback_url is None:
            return None
        body = _compact(self.wire(task))
        return Outgoing(task.callback_url, body, self.config.signing_key(task.owner))

    def _charge(self, owner: str) -> None:
        balance = self._balances.get(owner)
        if balance is None:
            return
        if balance <= 0:
            raise InsufficientBalance("insufficient balance: the task was not created")
        self._balances[owner] = balance - 1

    # -- read --------------------------------------------------------------------------------

    def task(self, owner: str, task_id: str) -> dict[str, Any]:
        """The task as `GET /v1/tasks/{id}` shows it; another key's task is a 404."""
        task = self.store.get(task_id)
        if task is None or task.owner != owner:
            raise NotFound("task not found")
        return self.wire(task)

    def task_json(self, owner: str, task_id: str) -> bytes:
        """`task()` as compact JSON. Polling reads a task again and again in one status: its
        JSON is rendered once per status (and again if the control plane changed the task),
        the last `_RENDERED_KEPT` tasks' kept."""
        task = self.store.get(task_id)
        if task is None or task.owner != owner:
            raise NotFound("task not found")
        timeline, error = task.timeline, task.error
        status = timeline.status_at(self.clock.now())
        kept = self._rendered.get(task_id)
        # Timelines and errors are immutable and replaced when a task changes: `is` tells.
        if kept is not None and kept[0] is timeline and kept[1] is error and kept[2] == status:
            return kept[3]
        rendered = _compact(self.wire(task, status))
        if len(self._rendered) >= _RENDERED_KEPT:
            self._rendered = {}  # replaced, not cleared: a reader elsewhere keeps its dict
        self._rendered[task_id] = (timeline, error, status, rendered)
        return rendered

    def page(self, owner: str, page: str | None, size: str | None) -> dict[str, Any]:
        """One page of the key's tasks, newest first; bad paging values fall back silently."""
        number = _int_in(page, 1, _MAX_PAGE, _DEFAULT_PAGE)
        per_page = _int_in(size, 1, _MAX_SIZE, _DEFAULT_SIZE)
        tasks = self.store.newest(owner, (number - 1) * per_page, per_page)
        return {
            "tasks": [self.wire(t) for t in tasks],
            "page": number,
            "size": per_page,
            "total": self.store.count(owner),
        }

    # -- the control plane ------------------------------------------------------------------

    def finish_task(
        self, task_id: str, status: str, code: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        """End a task now with `status` (`success`, or `fail` with an error code and message)."""
        task = self.known(task_id)
        if status not in TERMINAL:
            raise InvalidRequest("status: must be success or fail")
        now = self.clock.now()
        if task.timeline.finished <= now:
            ended = task.timeline.outcome
            raise InvalidRequest(f"task: already ended in {ended}; a finished task stays as it is")
        task.timeline = task.timeline.finish(now, status)
        if status == SUCCESS:
            task.error = None
        else:
            default = _FAILURE[1] if code in (None, _FAILURE[0]) else f"the task failed: {code}"
            task.error = (code or _FAILURE[0], message or default)
        self.store.replace(task)
        self._expires(task)
        if task.callback_url is not None:
            self.callbacks.schedule(task_id, task.timeline.finished)
        return self.wire(task)

    async def wait_for_status(self, task_id: str, status: str, timeout: float) -> bool:
        """Wait (wall seconds) until the task is in `status` or past it (`terminal`: ended);
        False on timeout, or when the task ended without passing through `status`."""
        if status != "terminal" and status not in STATUSES:
            raise InvalidRequest(f"status: must be terminal or one of {', '.join(STATUSES)}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            task = self.known(task_id)
            when, now = _entered(task, status), self.clock.now()
            if when <= now:
                return True
            if task.timeline.finished <= now:
                return False  # ended without passing through `status`
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # Re-read the task at least every second: a forced finish moves its end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.clock.sleep_until(when), min(remaining, 1.0))

    def known(self, task_id: str) -> TaskRecord:
        """The task with this id, whoever owns it, or 404."""
        task = self.store.get(task_id)
        if task is None:
            raise NotFound("task not found")
        return task

    def wire(self, task: TaskRecord, status: str | None = None) -> dict[str, Any]:
        """A task as HiAPI sends it, at the clock's current time (or in `status`)."""
        if status is None:
            status = task.timeline.status_at(self.clock.now())
        data: dict[str, Any] = {"taskId": task.task_id, "model": task.model}
        if task.route is not None:
            data["route"] = task.route
        completed = int(task.timeline.finished) if status in TERMINAL else 0
        data.update(status=status, created=int(task.timeline.created), completed=completed)
        if status == SUCCESS and task.output is not None:
            data["output"] = [
                {"url": self.outputs.url(task), "type": "image", "expireAt": completed + OUTPUT_TTL}
            ]
        elif status == FAIL and task.error is not None:
            data["error"] = {"code": task.error[0], "message": task.error[1]}
        return data


def _entered(task: TaskRecord, status: str) -> float:
    """When the task enters `status` (`terminal`: its end); inf when its plan passes it by."""
    line = task.timeline
    if status == "terminal":
        return line.finished
    if status in line.statuses:
        return line.times[line.statuses.index(status)]
    return math.inf


def staged_error(fault: HttpFault) -> MockError:
    """The error a staged HTTP fault answers with; a 429 or 503 always says when to retry."""
    message = fault.message or f"staged fault: {fault.status} {fault.code}"
    retry_after = fault.retry_after
    if retry_after is None and fault.status in (429, 503):
        retry_after = 1
    return error_for_status(fault.status, message, error_code=fault.code, retry_after=retry_after)


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _int_in(raw: str | None, low: int, high: int, default: int) -> int:
    # Only plain ASCII digits: int() would also read "1_0", "+2", " 2" and other scripts' digits.
    if raw is None or len(raw) > 12 or not (raw.isascii() and raw.isdigit()):
        return default
    value = int(raw)
    if not low <= value <= high:
        return default
    return value
