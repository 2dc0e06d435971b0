"""The outbox: what online billers must still be told, kept until they acknowledge it.

An advice (0220) or a reversal of an online payment is never refused because
its biller is down (billers.md): the ledger writes an outbox row in the same
transaction as the posting (``enqueue``, on the caller's connection, so the row
exists exactly when the posting does), and the delivery loop
(``switch/delivery.py``) sends it later, retried until the biller acknowledges.
The biller sees each payment and reversal once because every call carries the
payment's idempotency key (``payment_id``); delivering a row twice is harmless
to the biller, and the claim below keeps it rare.

Actions (one row per action and payment: enqueuing it again adds nothing):

- ``pay``: deliver an advice's payment (``body`` rebuilds its ``PaymentRequest``);
- ``reverse``: deliver a reversal (a 404 there counts as done);
- ``settle``: a payment whose answer never came (68): status check, then a reversal
  if the biller holds it.

A ``reverse`` or ``settle`` row waits while a ``pay`` of the same payment is
pending: a reversal delivered before its advice would find nothing (404, done)
and the advice would then leave the biller holding a reversed payment.

Claiming (``claim``): due rows are taken in one statement that pushes their
``next_at`` to the end of a lease and counts the attempt; on PostgreSQL the rows
are picked ``FOR UPDATE SKIP LOCKED``, so nodes claiming at once take different
rows. A node that dies mid-delivery leaves its rows due again when the lease
ends. ``attempts`` is the claim's token: a delivery finishes its row only if
nobody claimed it since (``finish``), so a late answer after a lease passed
changes nothing. SQLite: the single statement takes the write lock first (no
upgrade from a read), so several processes are safe, if serialised.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, exists, func, not_, or_, select, update

from routing.billers import PaymentRequest
from switch.ledger import schema as s
from switch.ledger.sql import bind, insert_rows

PAY, REVERSE, SETTLE = "pay", "reverse", "settle"
ACTIONS = (PAY, REVERSE, SETTLE)
PENDING, DONE, PARKED = "pending", "done", "parked"
ERROR_MAX = 200  # characters of ``last_error`` (the column's width)

_t = s.outbox.c
COLUMNS = (  # an outbox row as inserted (enqueue here, online.arm)
    "biller_code",
    "action",
    "payment_id",
    "body",
    "state",
    "attempts",
    "next_at",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True)
class Delivery:
    """One thing to tell a biller. ``delay``: seconds before the first attempt (a
    ``settle`` waits until the call it settles can no longer arrive at the biller)."""

    biller_code: str
    action: str
    payment_id: str
    body: str = "{}"
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"outbox action {self.action!r}: one of {', '.join(ACTIONS)}")


def pay(biller_code: str, payment: PaymentRequest) -> Delivery:
    """An advice's payment to deliver."""
    return Delivery(biller_code, PAY, payment.payment_id, payment_body(payment))


def reverse(biller_code: str, payment_id: str) -> Delivery:
    """A reversal to deliver."""
    return Delivery(biller_code, REVERSE, payment_id)


def settle(biller_code: str, payment_id: str, delay: float = 0.0) -> Delivery:
    """A payment in doubt: the biller must end up without it."""
    return Delivery(biller_code, SETTLE, payment_id, delay=delay)


def payment_body(payment: PaymentRequest) -> str:
    """JSON of a payment request (no card data: a bill payment carries none)."""
    return json.dumps(
        {
            "payment_id": payment.payment_id,
            "account": payment.account,
            "amount": payment.amount,
            "currency": payment.currency,
            "paid_at": payment.paid_at.isoformat(),
            "channel": payment.channel,
            "invoice": payment.invoice,
        },
        separators=(",", ":"),
    )


def payment_request(body: str) -> PaymentRequest:
    """The payment request a ``pay`` row was enqueued with."""
    data = json.loads(body)
    data["paid_at"] = datetime.fromisoformat(data["paid_at"])
    return PaymentRequest(**data)


def enqueue(conn: Connection, deliveries: Sequence[Delivery], now: datetime) -> int:
    """Add ``deliveries`` in the caller's transaction (they commit or roll back with it);
    returns how many rows are new (one already there for its action and payment stays)."""
    when = bind(conn, _t.next_at)
    rows = [
        (
            d.biller_code,
            d.action,
            d.payment_id,
            d.body,
            PENDING,
            0,
            when(now + timedelta(seconds=d.delay)),
            when(now),
            when(now),
        )
        for d in deliveries
    ]
    return insert_rows(conn, s.outbox, COLUMNS, rows, " ON CONFLICT DO NOTHING")


@dataclass(frozen=True)
class Claimed:
    """A row this node is delivering, until ``until`` (its lease)."""

    id: int
    biller_code: str
    action: str
    payment_id: str
    body: str
    attempts: int  # this attempt's number: the claim's token
    until: datetime


_due = s.outbox.alias("due")  # the rows a claim picks (the statement updates ``outbox``)
_advice = s.outbox.alias("advice")

# A non-pay row whose payment's advice is still pending is not due yet.
_AFTER_ITS_ADVICE = or_(
    _due.c.action == PAY,
    not_(
        exists().where(
            _advice.c.action == PAY,
            _advice.c.payment_id == _due.c.payment_id,
            _advice.c.state == PENDING,
        )
    ),
)


def claim(
    conn: Connection,
    now: datetime,
    lease: float,
    limit: int,
    skip_billers: Collection[str] = (),
) -> list[Claimed]:
    """Take up to ``limit`` due rows (oldest due first) for ``lease`` seconds, leaving out
    ``skip_billers`` (full or resting on this node)."""
    until = now + timedelta(seconds=lease)
    due = and_(_due.c.state == PENDING, _due.c.next_at <= now, _AFTER_ITS_ADVICE)
    if skip_billers:
        due = and_(due, _due.c.biller_code.not_in(sorted(skip_billers)))
    picked = (
        select(_due.c.id)
        .where(due)
        .order_by(_due.c.next_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = conn.execute(
        update(s.outbox)
        .where(_t.id.in_(picked.scalar_subquery()))
        .values(next_at=until, claimed_until=until, attempts=_t.attempts + 1, updated_at=now)
        .returning(_t.id, _t.biller_code, _t.action, _t.payment_id, _t.body, _t.attempts)
    ).all()
    return sorted(
        (
            Claimed(r.id, r.biller_code, r.action, r.payment_id, r.body, r.attempts, until)
            for r in claimed
        ),
        key=lambda c: c.id,
    )


def finish(
    conn: Connection,
    row: Claimed,
    now: datetime,
    state: str,
    next_at: datetime | None = None,
    error: str | None = None,
) -> bool:
    """End ``row``'s attempt: ``done``, ``parked`` (with its reason) or ``pending`` again
    at ``next_at``. False (nothing changed) if the row was claimed again since, after
    this attempt's lease passed: the newer attempt decides."""
    values = {
        "state": state,
        "next_at": next_at or now,
        "claimed_until": None,
        "updated_at": now,
        "last_error": None if error is None else error[:ERROR_MAX],
    }
    done = conn.execute(
        update(s.outbox)
        .where(_t.id == row.id, _t.attempts == row.attempts, _t.state == PENDING)
        .values(**values)
    )
    return done.rowcount == 1


def mark_done(conn: Connection, row: Claimed, now: datetime) -> bool:
    """The biller acknowledged the row."""
    return finish(conn, row, now, DONE)


def reschedule(conn: Connection, row: Claimed, now: datetime, at: datetime, error: str) -> bool:
    """A transient failure: try again at ``at``."""
    return finish(conn, row, now, PENDING, at, error)


def park(conn: Connection, row: Claimed, now: datetime, reason: str) -> bool:
    """The biller refused the row (4xx): no more attempts until an operator looks."""
    return finish(conn, row, now, PARKED, error=reason)


@dataclass(frozen=True)
class Depth:
    """The queue of one biller in one state: how many rows, since when the oldest waits."""

    biller_code: str
    state: str
    rows: int
    oldest: datetime


def depth(conn: Connection) -> list[Depth]:
    """Rows not done, by biller and state (what the gauges show)."""
    result = conn.execute(
        select(_t.biller_code, _t.state, func.count(), func.min(_t.created_at))
        .where(_t.state.in_((PENDING, PARKED)))
        .group_by(_t.biller_code, _t.state)
    )
    return [Depth(code, state, n, _aware(oldest)) for code, state, n, oldest in result]


def _aware(value: datetime) -> datetime:
    """SQLite gives times back naive (they were stored as UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
