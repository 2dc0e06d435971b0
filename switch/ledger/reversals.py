"""Reversals (0400) and reversal advices (0420) of an earlier payment, full or partial."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from switch.ledger import accounts as acc
from switch.ledger import schema as s
from switch.ledger.journal import Posting, post_all
from switch.ledger.orders import Order, Outcome, RequestKey, key_clause


@dataclass
class ReversalOrder(Order):
    """``kept`` is the amount the payer finally paid (DE 95); a reversal moves the
    payment's reversed amount up to ``amount - kept``. Reversing again to the
    same point changes nothing. Surplus first, then debts, newest first.
    """

    original: RequestKey
    kept: int
    advice: bool

    def apply(self, conn: Connection, now: datetime) -> Outcome:
        payment = self._original_payment(conn)
        if payment is None:
            return Outcome("00" if self.advice else "25")
        target = payment.amount - min(max(self.kept, 0), payment.amount)
        delta = target - payment.reversed_amount
        facts = {"payment_id": payment.id}
        if delta <= 0:
            return Outcome("00", facts)
        self._restore_debts(conn, payment, target)
        conn.execute(
            update(s.payments).where(s.payments.c.id == payment.id).values(reversed_amount=target)
        )
        post_all(conn, self._postings(payment, delta, target), now)
        return Outcome("00", facts)

    def _original_payment(self, conn: Connection) -> Any:
        o = self.original
        r = s.requests.c
        payment_id = conn.execute(
            select(r.payment_id).where(
                key_clause(o.acquirer_id, o.terminal_id, o.stan, o.transmitted),
                r.mti.in_(("0200", "0220")),
                r.payment_id.is_not(None),
            )
        ).scalar()
        if payment_id is None:
            return None
        return conn.execute(
            select(s.payments).where(s.payments.c.id == payment_id).with_for_update()
        ).one()

    def _restore_debts(self, conn: Connection, payment: Any, target: int) -> None:
        """Give debts back what the reversal takes from them, newest period first.

        The part of a payment that never went to a debt (an advice's surplus) is
        taken back first; debts reopen only for what the payer no longer pays.
        """
        a, d = s.allocations.c, s.debts.c
        rows = conn.execute(
            select(a.debt_id, a.amount, a.reversed_amount)
            .join(s.debts, d.id == a.debt_id)
            .where(a.payment_id == payment.id)
            .order_by(d.period.desc(), d.id.desc())
        ).all()
        surplus = payment.amount - sum(amount for _, amount, _ in rows)
        left = max(0, target - surplus) - max(0, payment.reversed_amount - surplus)
        for debt_id, amount, reversed_amount in rows:
            back = min(amount - reversed_amount, left)
            if back <= 0:
                continue
            conn.execute(
                update(s.debts).where(d.id == debt_id).values(amount_open=d.amount_open + back)
            )
            conn.execute(
                update(s.allocations)
                .where(a.payment_id == payment.id, a.debt_id == debt_id)
                .values(reversed_amount=a.reversed_amount + back)
            )
            left -= back

    def _postings(self, payment: Any, delta: int, target: int) -> list[Posting]:
        receivable = acc.acquirer_receivable(payment.acquirer_id, payment.currency)
        if payment.biller_code:
            payable = acc.biller_payable(payment.biller_code, payment.currency)
        else:
            payable = acc.suspense(payment.currency)
        common = (payment.id, payment.acquirer_id, payment.currency, self.business_day)
        result = [Posting("reversal", *common, ((receivable, -delta), (payable, delta)))]
        if target == payment.amount and payment.fee:
            legs = ((receivable, -payment.fee), (acc.fee_income(payment.currency), payment.fee))
            result.append(Posting("fee_reversal", *common, legs))
        return result
