"""Online billers' payments in the ledger: the settle row is the intent.

An online biller takes a payment itself (routing/adapters/online.py), so the
switch must never keep money the biller did not accept, nor leave the biller
holding money the ledger did not record. One rule carries that across every
failure and crash: BEFORE a 0200 goes to the biller, an outbox ``settle`` row
for its biller payment id is committed (``arm``, batched by switch/intents.py).
Only the ledger transaction that posts the accepted payment removes it
(``OnlinePaymentOrder``); every other ending leaves it, and the delivery loop
(switch/delivery.py) later asks the biller for the payment's status and
reverses whatever it holds: a 68, a crash between the biller's acceptance and
the commit, a ledger that refused (a reversal's tombstone got there first) or
missed its deadline. The row is due only after the call's time limit and the
ledger's deadline have both passed, so it never fires while the payment may
still be posted.

A settle row that meets a posted payment of its id (a retransmission of an approved
0200 arms it again after the posting removed it; the ledger answers the
retransmission from the stored answer) is done without a call: ``posted``, asked
by the delivery loop first. A payment whose settle row is not there, pending and
unclaimed when the ledger would post it (a delivery is settling it, or it was settled already) is
declined 05 and its row armed again: the ledger only posts what no settlement
can undo behind its back.

Advices (0220) of online billers post as today and enqueue a ``pay`` row;
reversals of online payments enqueue a ``reverse`` row (``tell_reversals``),
each in the same transaction as its posting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, delete, or_, select, update

from routing.billers import Accepted, PaymentRequest
from switch.ledger import outbox
from switch.ledger import schema as s
from switch.ledger.orders import Order, Outcome
from switch.ledger.payments import PaymentOrder
from switch.ledger.sql import Writes, bind, insert_rows

_o, _p = s.outbox.c, s.payments.c
# A settle row already there (a repeat of the payment, or one settled before) is armed
# again; its attempt count moves on, so a delivery still under way with the old claim
# cannot finish it (outbox.finish compares the count).
_REARM = (
    " ON CONFLICT (action, payment_id) DO UPDATE SET state = 'pending',"
    " next_at = excluded.next_at, claimed_until = NULL, attempts = outbox.attempts + 1,"
    " last_error = NULL, updated_at = excluded.updated_at"
)
PARTIAL = "partial reversal: the biller's API reverses whole payments only; an operator decides"


@dataclass(frozen=True)
class Intent:
    """A payment about to be sent to ``biller_code``: settle it after ``delay`` seconds
    unless the ledger posts it first."""

    biller_code: str
    payment_id: str
    delay: float


def arm(conn: Connection, intents: Sequence[Intent], now: datetime) -> None:
    """Write (or arm again) the settle rows of ``intents`` in the caller's transaction."""
    when = bind(conn, _o.next_at)
    rows = [
        (
            i.biller_code,
            outbox.SETTLE,
            i.payment_id,
            "{}",
            outbox.PENDING,
            0,
            when(now + timedelta(seconds=i.delay)),
            when(now),
            when(now),
        )
        for i in intents
    ]
    insert_rows(conn, s.outbox, outbox.COLUMNS, rows, _REARM)


def drop(conn: Connection, payment_ids: Sequence[str]) -> None:
    """Remove the settle rows of payments the biller refused for certain (14, 13, 05, 91:
    it holds nothing), unless a delivery has one under way."""
    if payment_ids:
        conn.execute(
            delete(s.outbox).where(
                _o.action == outbox.SETTLE,
                _o.payment_id.in_(list(payment_ids)),
                _o.state == outbox.PENDING,
                _o.claimed_until.is_(None),
            )
        )


@dataclass
class OnlinePaymentOrder(PaymentOrder):
    """A payment an online biller accepted (``accepted``), or an advice of an online biller
    (``request``: what its ``pay`` row tells the biller). Decided like an outline
    payment: no debts held here; the amount was checked against the biller's limits."""

    biller_payment_id: str = ""
    accepted: Accepted | None = None
    request: PaymentRequest | None = None

    @property
    def biller_facts(self) -> tuple[str | None, ...]:
        a = self.accepted
        if a is None:
            return (self.biller_payment_id, None, None, None)
        return (self.biller_payment_id, a.biller_ref, a.receipt, a.token)

    @classmethod
    def apply_batch(
        cls, conn: Connection, orders: Sequence[Order], now: datetime, writes: Writes
    ) -> list[Outcome]:
        mine: list[OnlinePaymentOrder] = list(orders)  # type: ignore[arg-type]
        taken = take_settle_rows(conn, [o.biller_payment_id for o in mine if not o.advice], now)
        blocked = [o for o in mine if not o.advice and o.biller_payment_id not in taken]
        go = [o for o in mine if o.advice or o.biller_payment_id in taken]
        decided = dict(zip(map(id, go), super().apply_batch(conn, go, now, writes), strict=True))
        approved = {id(o) for o in go if decided[id(o)].code == "00"}
        declined = [o.biller_payment_id for o in go if not o.advice and id(o) not in approved]
        if declined:  # not posted after all: their intents stand, as they were
            insert_rows(conn, s.outbox, outbox.COLUMNS, [taken[pid] for pid in declined])
        deliveries = [
            outbox.pay(o.biller.code, o.request)  # type: ignore[union-attr, arg-type]
            for o in go
            if o.advice and id(o) in approved
        ]
        if deliveries:
            outbox.enqueue(conn, deliveries, now)
        if blocked:  # its settlement is under way or done: it must not be posted
            arm(conn, [Intent(o.biller.code, o.biller_payment_id, 0) for o in blocked], now)  # type: ignore[union-attr]
        return [decided.get(id(o)) or Outcome("05") for o in mine]


def take_settle_rows(
    conn: Connection, payment_ids: list[str], now: datetime
) -> dict[str, tuple[object, ...]]:
    """Delete, of these payments' settle rows, those pending and claimed by no delivery,
    and give them back by payment id (in ``outbox.COLUMNS`` order, ready to insert again).

    One statement (a locking read and a delete were two round trips of every online
    batch): a subquery locks the rows in payment id order, so two writers never wait on
    each other crosswise, and the delete returns them. A claim skips a locked row; a row
    a claim holds is read again once that commits, and, claimed now, stays. SQLite runs
    the same statement under its write lock."""
    if not payment_ids:
        return {}
    free = (
        select(_o.id)
        .where(
            _o.action == outbox.SETTLE,
            _o.payment_id.in_(payment_ids),
            _o.state == outbox.PENDING,
            or_(_o.claimed_until.is_(None), _o.claimed_until <= now),
        )
        .order_by(_o.payment_id)
        .with_for_update()
    )
    columns = [_o[name] for name in outbox.COLUMNS]
    deleted = delete(s.outbox).where(_o.id.in_(free.scalar_subquery())).returning(*columns)
    when = bind(conn, _o.next_at)
    times = {"next_at", "created_at", "updated_at"}
    return {
        row.payment_id: tuple(
            when(_aware(v)) if name in times else v
            for name, v in zip(outbox.COLUMNS, row, strict=True)
        )
        for row in conn.execute(deleted)
    }


def posted(conn: Connection, payment_id: str) -> bool:
    """Whether the ledger posted the payment with this biller id (then its settle row has
    nothing to undo: the biller's copy is the ledger's; a reversal tells it apart)."""
    query = select(_p.id).where(_p.biller_payment_id == payment_id).limit(1)
    return conn.execute(query).first() is not None


@dataclass
class AnswerOrder(Order):
    """Records a request's answer and nothing else: the 68 of a payment whose biller did
    not answer in time, so that its repeats get 68 too rather than a second call."""

    code: str = "68"

    def apply(self, conn: Connection, now: datetime, writes: Writes) -> Outcome:
        return Outcome(self.code)


@dataclass(frozen=True)
class Reversed:
    """A reversal the ledger applied to an online payment."""

    biller_code: str
    biller_payment_id: str
    partial: bool


def tell_reversals(conn: Connection, reversed_: Sequence[Reversed], now: datetime) -> None:
    """Enqueue the biller's reversals (same transaction as the ledger's). A partial one
    cannot be told (the API reverses whole payments): its row is parked with the reason
    for an operator, who sees it in the outbox's parked gauge."""
    if not reversed_:
        return
    outbox.enqueue(
        conn, [outbox.reverse(r.biller_code, r.biller_payment_id) for r in reversed_], now
    )
    partial = [r.biller_payment_id for r in reversed_ if r.partial]
    if partial:
        conn.execute(
            update(s.outbox)
            .where(
                _o.action == outbox.REVERSE,
                _o.payment_id.in_(partial),
                _o.state == outbox.PENDING,
                _o.attempts == 0,
            )
            .values(state=outbox.PARKED, last_error=PARTIAL)
        )


def _aware(value: datetime) -> datetime:
    """SQLite gives times back naive (they were stored as UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
