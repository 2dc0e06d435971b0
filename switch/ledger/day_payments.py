"""What one business day paid each offline biller, as the ledger has it: payment files' rows.

Everything is decided by business days recorded in the ledger, never by the
clock of the reader: a payment belongs to its row's ``business_day``, a
reversal to its journal row's. Once a day is closed no batch writes into it
(switch/ledger/days.py), so these reads give the same rows however late they
run: a payment file made again is the same file.

- A payment of day D is listed with what the day's own reversals left of it;
  one reversed whole that day is left out.
- A reversal posted on day D of a payment of an earlier day is listed on its
  own (the earlier day's file already named the payment): one row per payment,
  the day's reversals of it summed.

Rows stream in payment id order (a server-side cursor on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby

from sqlalchemy import Connection, func, select

from switch.ledger import schema as s
from switch.ledger.reference import DEBTS_HELD

FETCH = 5000  # rows per round trip of the cursor: bounded memory, few round trips

_p, _j, _a, _d = s.payments.c, s.journal.c, s.allocations.c, s.debts.c


@dataclass(frozen=True)
class DayPayment:
    """A payment of the day, less that day's reversals of it (``amount`` > 0)."""

    payment_id: int
    account: str
    amount: int
    paid_at: datetime  # naive means UTC (SQLite keeps no offset)
    channel: str
    acquirer_id: str
    rrn: str | None
    invoices: tuple[str, ...]  # of the debts it paid, oldest period first


@dataclass(frozen=True)
class LateReversal:
    """Reversals posted on the day of a payment of an earlier day, summed."""

    payment_id: int
    amount: int


def day_state(conn: Connection, day: date) -> str | None:
    """``open``, ``closed``, or None for a day the ledger never had."""
    row = select(s.business_days.c.state).where(s.business_days.c.day == day)
    return conn.execute(row).scalar()


def offline_billers(conn: Connection) -> list[tuple[str, str]]:
    """(code, currency) of every biller whose debts the switch holds, by code: each is
    owed a payment file every business day."""
    b = s.billers.c
    rows = select(b.code, b.currency).where(b.kind.in_(sorted(DEBTS_HELD))).order_by(b.code)
    return [(code, currency) for code, currency in conn.execute(rows)]


def _reversed_on(day: date):  # type: ignore[no-untyped-def]
    """Per payment, what reversals posted on ``day`` took (the partial index's rows)."""
    return (
        select(_j.payment_id, func.sum(_j.amount).label("reversed"))
        .where(_j.kind == "reversal", _j.business_day == day)
        .group_by(_j.payment_id)
        .subquery("reversed_on_day")
    )


def day_payments(conn: Connection, biller: str, day: date) -> Iterator[DayPayment]:
    """The biller's payments of ``day``, by id, with what that day's reversals left."""
    rev = _reversed_on(day)
    rows = (
        select(
            _p.id,
            _p.account,
            _p.amount - func.coalesce(rev.c.reversed, 0),
            _p.created_at,
            _p.channel,
            _p.acquirer_id,
            _p.rrn,
            _d.invoice,
        )
        .select_from(
            s.payments.outerjoin(rev, rev.c.payment_id == _p.id)
            .outerjoin(s.allocations, _a.payment_id == _p.id)
            .outerjoin(s.debts, _d.id == _a.debt_id)
        )
        .where(_p.biller_code == biller, _p.business_day == day)
        .order_by(_p.id, _d.period, _d.id)
        .execution_options(yield_per=FETCH)
    )
    result = conn.execute(rows)
    try:
        for _, group in groupby(result, key=lambda r: r[0]):
            first, *more = group
            if first[2] <= 0:  # reversed whole on the day it was paid
                continue
            invoices = tuple(r[7] for r in (first, *more) if r[7])
            yield DayPayment(*first[:7], invoices=invoices)
    finally:
        result.close()


def late_reversals(conn: Connection, biller: str, day: date) -> Iterator[LateReversal]:
    """Reversals posted on ``day`` of the biller's payments of earlier days, by payment."""
    rows = (
        select(_j.payment_id, func.sum(_j.amount))
        .select_from(s.journal.join(s.payments, _p.id == _j.payment_id))
        .where(
            _j.kind == "reversal",
            _j.business_day == day,
            _p.biller_code == biller,
            _p.business_day < day,
        )
        .group_by(_j.payment_id)
        .order_by(_j.payment_id)
        .execution_options(yield_per=FETCH)
    )
    result = conn.execute(rows)
    try:
        for payment_id, amount in result:
            yield LateReversal(payment_id, amount)
    finally:
        result.close()
