"""Callback delivery as HiAPI does it, and every way it can go wrong on purpose.

When a task with `callback.url` ends, its object (the GET's `data`, no envelope) is POSTed as
JSON; with a signing key, `X-HiAPI-Timestamp` and `X-HiAPI-Signature` sign exactly the bytes
sent. A non-2xx, a timeout or a network error is retried after 60 s, 300 s and 1200 s of the
fake's clock (4 attempts in all); then delivery stops and the task is unchanged. Each attempt
ends at the first of: an answer, the timeout on the fake's clock, the timeout on the wall clock.

The types (policy, faults, attempts, what is owed) are in `delivery`. Faults chosen per task
(`CallbackFault`): `drop` (never sent), `duplicate` (sent `copies` times
at once), `delay` (first attempt `delay` seconds late), `reorder` (held until the end of a
`window`-second burst, then sent newest first, one after another), `bad_signature`,
`stale_timestamp` (signed `stale_by` seconds in the past). Every attempt, and every drop, is in
the delivery log, a ring of the last `DeliveryPolicy.log_size` attempts.

An `Outbox` (a durable store) is told of every delivery that is due or in retry, and of each
one finished (acknowledged with a 2xx, out of attempts, or dropped on purpose); after a restart
`Callbacks.resume` takes up what it still holds. A task's plan (its fault, and the copies still
being delivered) is forgotten once its delivery is finished.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .clock import Clock
from .delivery import (
    Attempt,
    CallbackFault,
    Delivery,
    DeliveryPolicy,
    Fault,
    Outbox,
    Outgoing,
)
from .scheduler import Scheduler, handed_off
from .sender import Sender
from .signing import signature_headers

__all__ = ["Callbacks"]

_USER_AGENT = "hiapi-mock-callbacks/0.1"


class _NoOutbox:
    def owe(self, delivery: Delivery) -> None:
        pass

    def settle(self, task_id: str, copy: int | None = None) -> None:
        pass


@dataclass(slots=True)
class _Plan:
    """One task's callback until its delivery is finished."""

    generation: int = 0  # a task rescheduled drops its earlier plan
    fault: CallbackFault | None = None
    due: float | None = None  # of the first send, once scheduled
    started: bool = False  # the first send began: `open` says which copies are still owed
    open: set[int] = field(default_factory=set)


Source = Callable[[str], Outgoing | None]


class Callbacks:
    """Schedules, sends, signs, retries and logs callbacks; faults on request."""

    def __init__(
        self,
        scheduler: Scheduler,
        source: Source,
        policy: DeliveryPolicy | None = None,
        *,
        outbox: Outbox | None = None,
    ) -> None:
        self.clock: Clock = scheduler.clock
        self.policy = policy or DeliveryPolicy()
        self.scheduler = scheduler
        scheduler.on_close(self._aclose)
        self._source = source
        self._sender: Sender | None = None
        self._outbox: Outbox = outbox if outbox is not None else _NoOutbox()
        self._lock = threading.Lock()
        self._plans: dict[str, _Plan] = {}
        self._bursts: dict[float, list[tuple[float, str]]] = {}
        self._log: deque[Attempt] = deque(maxlen=self.policy.log_size)
        self._epoch = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- public -----------------------------------------------------------------------------------

    def set_fault(self, task_id: str, fault: CallbackFault | None) -> None:
        """Make (or, with None, stop making) this task's callback misbehave."""
        with self._lock:
            plan = self._plans.setdefault(task_id, _Plan())
            plan.fault = fault
            owed = None if plan.started or plan.due is None else plan.due
        if owed is not None:
            self._outbox.owe(Delivery(task_id, 1, 1, owed, fault))

    def schedule(self, task_id: str, finished: float) -> None:
        """Deliver `task_id`'s callback once the clock reaches `finished` (the task's end).

        Scheduling a task again (its end moved) replaces the earlier plan.
        """
        with self._lock:
            plan = self._plans.setdefault(task_id, _Plan())
            plan.generation += 1
            fault, generation, epoch = plan.fault, plan.generation, self._epoch
            when = finished + (fault.delay if fault and fault.kind is Fault.DELAY else 0.0)
            plan.due = when
        self._outbox.owe(Delivery(task_id, 1, 1, when, fault))
        self._plan_first(task_id, when, fault, epoch, generation)

    def resume(self, deliveries: Iterable[Delivery]) -> None:
        """Take up deliveries a previous run still owed (from its outbox); those already due
        go out at once. A first send not yet begun is made as planned (copies, drop, burst)."""
        owed = list(deliveries)
        fanned = {d.task_id for d in owed if d.copy > 1}  # the first send had begun
        for delivery in owed:
            task_id, copy, number, due = (
                delivery.task_id,
                delivery.copy,
                delivery.attempt,
                delivery.due,
            )
            with self._lock:
                plan = self._plans.setdefault(task_id, _Plan())
                plan.fault, epoch = delivery.fault, self._epoch
                first = number == 1 and copy == 1 and task_id not in fanned
                if first:
                    plan.generation += 1
                    plan.due = due
                else:
                    plan.started = True
                    plan.open.add(copy)
                generation = plan.generation
            if first:
                self._plan_first(task_id, due, delivery.fault, epoch, generation)
            else:
                self._retry_at(due, task_id, number, copy, epoch)

    def pending(self) -> int:
        """Tasks whose callback is planned or still being delivered (their plans are kept)."""
        with self._lock:
            return len(self._plans)

    async def wait_for(self, task_id: str, timeout: float, *, delivered: bool = True) -> bool:
        """Wait (wall seconds) until the task's callback was delivered (a 2xx), or, with
        `delivered=False`, merely attempted; True if it happened in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(a.ok or not delivered for a in self.for_task(task_id)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._waiters.append((loop, future))
            try:
                await asyncio.wait({future}, timeout=remaining)
            finally:
                with self._lock:
                    if (loop, future) in self._waiters:
                        self._waiters.remove((loop, future))
        return True

    @property
    def log(self) -> list[Attempt]:
        """Every attempt so far, oldest first."""
        with self._lock:
            return list(self._log)

    def for_task(self, task_id: str) -> list[Attempt]:
        return [a for a in self.log if a.task_id == task_id]

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until every delivery now due has been made (or has failed)."""
        self.scheduler.wait_idle(timeout)

    def reset(self) -> None:
        with self._lock:
            self._epoch += 1
            self._plans.clear()
            self._bursts.clear()
            self._log.clear()
        self.scheduler.reset()

    # -- delivery ---------------------------------------------------------------------------------

    def _plan_first(
        self, task_id: str, when: float, fault: CallbackFault | None, epoch: int, generation: int
    ) -> None:
        if fault is not None and fault.kind is Fault.REORDER:
            self._join_burst(task_id, when, fault.window, epoch)
        else:
            self.scheduler.at(when, lambda: self._first(task_id, when, epoch, generation))

    def _retry_at(self, when: float, task_id: str, number: int, copy: int, epoch: int) -> None:
        self.scheduler.at(when, lambda: self._attempt(task_id, number, copy, when, epoch))

    def _join_burst(self, task_id: str, finished: float, window: float, epoch: int) -> None:
        release = (math.floor(finished / window) + 1) * window
        with self._lock:
            burst = self._bursts.setdefault(release, [])
            burst.append((finished, task_id))
            first = len(burst) == 1
        if first:
            self.scheduler.at(release, lambda: self._release_burst(release, epoch))

    async def _release_burst(self, release: float, epoch: int) -> None:
        with self._lock:
            burst = sorted(self._bursts.pop(release, []), reverse=True)
        for _, task_id in burst:  # newest first, one after another: arrival order is the fault
            self._begin(task_id, None)
            await self._attempt(task_id, 1, 1, release, epoch)

    def _begin(self, task_id: str, generation: int | None) -> tuple[bool, CallbackFault | None]:
        """Start the first send, if the plan is still this one; (started, the fault)."""
        with self._lock:
            plan = self._plans.get(task_id)
            if plan is None or generation not in (None, plan.generation):
                return False, None
            fault = plan.fault
            copies = fault.copies if fault is not None and fault.kind is Fault.DUPLICATE else 1
            plan.started, plan.open = True, set(range(1, copies + 1))
            return True, fault

    async def _first(self, task_id: str, scheduled_at: float, epoch: int, generation: int) -> None:
        started, fault = self._begin(task_id, generation)
        if not started:
            return
        if fault is not None and fault.kind is Fault.DROP:
            outgoing = self._source(task_id)
            url = outgoing.url if outgoing else ""
            self._finished(task_id, 1, epoch)
            self._record(Attempt(task_id, url, 1, 1, scheduled_at, None, {}, None,
                                 "dropped on purpose", 0.0, Fault.DROP.value), epoch)  # fmt: skip
            return
        copies = fault.copies if fault is not None and fault.kind is Fault.DUPLICATE else 1
        for copy in range(2, copies + 1):
            self._outbox.owe(Delivery(task_id, copy, 1, scheduled_at, fault))
        await asyncio.gather(
            *(self._attempt(task_id, 1, copy, scheduled_at, epoch) for copy in range(1, copies + 1))
        )

    async def _attempt(
        self, task_id: str, number: int, copy: int, scheduled_at: float, epoch: int
    ) -> None:
        outgoing = self._source(task_id)
        if epoch != self._epoch:
            return
        if outgoing is None:  # the task is gone: nothing left to send
            self._finished(task_id, copy, epoch)
            return
        fault = self._fault(task_id)
        headers = self._headers(outgoing, fault)
        sent_at, started = self.clock.now(), time.perf_counter()
        status, error = await self._post(outgoing, headers, sent_at)
        # Answered (or given up on): a callback due later may start now, so a receiver sees
        # them in due-time order. Written is not enough: two requests on two connections may
        # reach a receiver's handlers in either order.
        handed_off()
        attempt = Attempt(
            task_id, outgoing.url, number, copy, scheduled_at, sent_at, headers, status, error,
            time.perf_counter() - started, fault.kind.value if fault else None,
        )  # fmt: skip
        # The outbox first: once the log shows an attempt, the outbox knows what follows it.
        if attempt.ok or number >= self.policy.attempts:
            self._finished(task_id, copy, epoch)
            self._record(attempt, epoch)
        elif epoch == self._epoch:
            when = self.clock.now() + self.policy.retry_delays[number - 1]
            self._outbox.owe(Delivery(task_id, copy, number + 1, when, fault))
            self._record(attempt, epoch)
            self._retry_at(when, task_id, number + 1, copy, epoch)

    def _fault(self, task_id: str) -> CallbackFault | None:
        with self._lock:
            plan = self._plans.get(task_id)
            return plan.fault if plan is not None else None

    def _finished(self, task_id: str, copy: int, epoch: int) -> None:
        """A copy's delivery is over (acknowledged, out of attempts, dropped): forget it, and
        the whole plan once no copy is owed."""
        with self._lock:
            if epoch != self._epoch:
                return
            plan = self._plans.get(task_id)
            if plan is not None:
                plan.open.discard(copy)
                if plan.started and not plan.open:
                    del self._plans[task_id]
        self._outbox.settle(task_id, copy)

    def _headers(self, outgoing: Outgoing, fault: CallbackFault | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        now = int(self.clock.now())
        kind = fault.kind if fault is not None else None
        if kind is Fault.BAD_SIGNATURE:
            # Signed, but not with the account's key: a receiver that verifies must refuse it.
            wrong = "not-the-signing-key-" + (outgoing.secret or "")
            headers.update(signature_headers(wrong, now, outgoing.body))
        elif outgoing.secret is not None:
            stale = fault.stale_by if fault and kind is Fault.STALE_TIMESTAMP else 0.0
            headers.update(signature_headers(outgoing.secret, int(now - stale), outgoing.body))
        return headers

    async def _post(
        self, outgoing: Outgoing, headers: dict[str, str], sent_at: float
    ) -> tuple[int | None, str | None]:
        timeout = self.policy.timeout
        request = asyncio.ensure_future(self._http().post(outgoing.url, outgoing.body, headers))
        deadline = asyncio.ensure_future(self.clock.sleep_until(sent_at + timeout))
        try:
            # The wall-clock timeout bounds the whole attempt, connecting included.
            done, _ = await asyncio.wait(
                {request, deadline}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if request in done:
                return request.result(), None
            if deadline in done:
                return None, f"timed out after {timeout:g} s on the fake's clock"
            return None, f"timed out after {timeout:g} s"
        except Exception as exc:  # any: a URL that cannot be used fails like one that is down
            return None, f"{type(exc).__name__}: {exc}"[:300]
        finally:
            for waiter in (request, deadline):
                waiter.cancel()
            await asyncio.gather(request, deadline, return_exceptions=True)

    def _http(self) -> Sender:
        # Created on the scheduler's loop, where every delivery runs.
        if self._sender is None:
            self._sender = Sender(limit=self.policy.concurrency)
        return self._sender

    async def _aclose(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()
            self._sender = None

    def _record(self, attempt: Attempt, epoch: int) -> None:
        with self._lock:
            if epoch != self._epoch:
                return
            self._log.append(attempt)
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, future)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
