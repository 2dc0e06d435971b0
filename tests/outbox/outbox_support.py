"""Helpers of the outbox tests: a biller that keeps what it was told, and a loop on a clock.

The delivery loop's database work runs at once on the test thread here (the
``db`` it is given runs a real transaction on a real database and returns a
fired Deferred), and its time is a ``task.Clock``: a test moves time and sees
what was delivered, with no sleeps. The biller is an in-test implementation of
``routing.routes.BillerAdapter`` with the online biller API's semantics
(idempotent payment ids, a 404 reversal counts as done, a status check); the
HTTP adapter is tested on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import Clock

from routing.billers import Accepted, BillerError, PaymentRequest, PaymentStatus
from switch.config import OutboxSettings
from switch.ledger import outbox
from switch.ledger import schema as s

NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
BILLER = "TEL01"
SETTINGS = OutboxSettings(
    poll=1.0, batch=5, backoff_base=2.0, backoff_cap=60.0, lease=30.0, max_in_flight=2
)


def payment(pid: str, amount: int = 8800) -> PaymentRequest:
    return PaymentRequest(pid, "5550001", amount, "944", NOW, "ATM", invoice="INV1")


def sync_db(engine: Engine) -> Callable[..., Deferred[Any]]:
    """``Reads.transaction`` without the thread: the work runs now, in a committed
    transaction, and its Deferred has fired when this returns."""

    def run(work: Callable[..., Any], *args: Any) -> Deferred[Any]:
        def go() -> Any:
            with engine.begin() as conn:
                return work(conn, *args)

        return maybeDeferred(go)

    return run


@dataclass
class FakeBiller:
    """An online biller: what it holds, every call it got, failures to give on request.

    ``failures``: errors the next calls raise, in order (any action). ``hold``: calls
    wait for the test (``release``) instead of answering at once."""

    kind: str = "online"
    remote: bool = True
    held: dict[str, str] = field(default_factory=dict)  # payment id -> accepted / reversed
    calls: list[tuple[str, str]] = field(default_factory=list)  # (action, payment id)
    failures: deque[BillerError] = field(default_factory=deque)
    hold: bool = False
    waiting: list[tuple[str, str, Deferred[Any], Callable[[], Any]]] = field(default_factory=list)

    def fetch_bill(self, biller_code: str, account: str, period: str | None) -> Deferred[Any]:
        return succeed(None)

    def pay(self, biller_code: str, p: PaymentRequest) -> Deferred[Accepted]:
        return self._answer("pay", p.payment_id, lambda: self._take(p.payment_id))

    def reverse(self, biller_code: str, payment_id: str) -> Deferred[None]:
        return self._answer("reverse", payment_id, lambda: self._reverse(payment_id))

    def status(self, biller_code: str, payment_id: str) -> Deferred[PaymentStatus | None]:
        return self._answer("status", payment_id, lambda: self._status(payment_id))

    def _take(self, payment_id: str) -> Accepted:
        self.held.setdefault(payment_id, "accepted")
        return Accepted(biller_ref=f"REF-{payment_id}")

    def _reverse(self, payment_id: str) -> None:
        if payment_id in self.held:  # else a 404, which the adapter counts as done
            self.held[payment_id] = "reversed"

    def _status(self, payment_id: str) -> PaymentStatus | None:
        state = self.held.get(payment_id)
        return None if state is None else PaymentStatus(payment_id, state, "5550001", 8800)

    def _answer(self, action: str, payment_id: str, effect: Callable[[], Any]) -> Deferred[Any]:
        self.calls.append((action, payment_id))
        if self.failures:
            return fail(self.failures.popleft())
        if self.hold:
            d: Deferred[Any] = Deferred()
            self.waiting.append((action, payment_id, d, effect))
            return d
        return succeed(effect())

    def release(self) -> None:
        """Answer every held call."""
        waiting, self.waiting = self.waiting, []
        for _, _, d, effect in waiting:
            d.callback(effect())

    def under_way(self) -> list[tuple[str, str]]:
        """The calls held now, as (action, payment id)."""
        return [(action, pid) for action, pid, _, _ in self.waiting]

    def count(self, action: str, payment_id: str) -> int:
        return self.calls.count((action, payment_id))


def clock_at(when: datetime = NOW) -> Clock:
    clock = Clock()
    clock.advance(when.timestamp())
    return clock


def add(engine: Engine, *deliveries: outbox.Delivery, now: datetime = NOW) -> int:
    with engine.begin() as conn:
        return outbox.enqueue(conn, deliveries, now)


@dataclass(frozen=True)
class Row:
    action: str
    payment_id: str
    state: str
    attempts: int
    next_at: datetime
    last_error: str | None


def rows(engine: Engine) -> dict[tuple[str, str], Row]:
    """Every outbox row by (action, payment id)."""
    with engine.connect() as conn:
        return {(r.action, r.payment_id): r for r in _read(conn)}


def _read(conn: Connection) -> list[Row]:
    t = s.outbox.c
    result = conn.execute(
        select(t.action, t.payment_id, t.state, t.attempts, t.next_at, t.last_error)
    )
    return [
        Row(a, p, st, n, nx if nx.tzinfo else nx.replace(tzinfo=UTC), e)
        for a, p, st, n, nx, e in result
    ]
