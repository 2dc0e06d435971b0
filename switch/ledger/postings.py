"""What the ledger writer does for each money message, inside one database transaction.

Every order first claims its request key (``requests`` is unique on acquirer,
terminal, STAN, transmission time and MTI), so a retransmission finds the
stored response and a different message under the same key gets 94, on any
number of switch nodes. Then the order applies its effect: checks against
the open debts, the payment or reversal rows, the journal and its entries.
Declines are decided before anything is written, so a declined order leaves
only its request row.
"""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from switch.ledger import accounts as acc
from switch.ledger import schema as s
from switch.ledger.reference import Biller
from switch.ledger.sql import insert_ignore


@dataclass(frozen=True)
class RequestKey:
    """The identity of a request: DE 32 + DE 41 + DE 11 + DE 7, and the base MTI."""

    acquirer_id: str
    terminal_id: str
    stan: str
    transmitted: str
    mti: str


@dataclass(frozen=True)
class Outcome:
    """What an order decided: a response code and facts for the response."""

    code: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """The committed result handed back to the pipeline."""

    code: str
    response: dict[str, str]
    replay: bool = False


Respond = Callable[[Outcome], dict[str, str]]


@dataclass
class Order(ABC):
    key: RequestKey
    request_hash: str
    respond: Respond
    business_day: date

    @abstractmethod
    def apply(self, conn: Connection, now: datetime) -> Outcome:
        """Check and write this order's effect; decline before writing anything."""


def record(conn: Connection, order: Order, now: datetime) -> Recorded:
    """Claim the request key, apply the order, store the response; all in ``conn``'s transaction."""
    k = order.key
    claimed = conn.execute(
        insert_ignore(conn, s.requests)
        .values(
            acquirer_id=k.acquirer_id,
            terminal_id=k.terminal_id,
            stan=k.stan,
            transmitted=k.transmitted,
            mti=k.mti,
            request_hash=order.request_hash,
            response_code="--",
            response="{}",
            created_at=now,
        )
        .returning(s.requests.c.id)
    ).first()
    if claimed is None:
        return _earlier(conn, order)
    outcome = order.apply(conn, now)
    response = order.respond(outcome)
    conn.execute(
        update(s.requests)
        .where(s.requests.c.id == claimed.id)
        .values(
            response_code=outcome.code,
            response=json.dumps(response, sort_keys=True),
            payment_id=outcome.facts.get("payment_id"),
        )
    )
    return Recorded(outcome.code, response)


def _earlier(conn: Connection, order: Order) -> Recorded:
    k = order.key
    row = conn.execute(
        select(s.requests.c.request_hash, s.requests.c.response_code, s.requests.c.response).where(
            _key_clause(k.acquirer_id, k.terminal_id, k.stan, k.transmitted),
            s.requests.c.mti == k.mti,
        )
    ).one()
    if row.request_hash == order.request_hash:
        return Recorded(row.response_code, json.loads(row.response), replay=True)
    return Recorded("94", order.respond(Outcome("94")))


def _key_clause(acquirer_id: str, terminal_id: str, stan: str, transmitted: str):  # type: ignore[no-untyped-def]
    r = s.requests.c
    return and_(
        r.acquirer_id == acquirer_id,
        r.terminal_id == terminal_id,
        r.stan == stan,
        r.transmitted == transmitted,
    )


def post(
    conn: Connection,
    kind: str,
    *,
    payment_id: int | None,
    acquirer_id: str,
    currency: str,
    day: date,
    now: datetime,
    legs: Sequence[tuple[str, int]],
) -> None:
    """One journal row and its entries; the legs must balance."""
    if sum(amount for _, amount in legs) != 0:
        raise ValueError(f"unbalanced {kind} posting")
    journal_id = conn.execute(
        insert(s.journal)
        .values(
            kind=kind,
            payment_id=payment_id,
            acquirer_id=acquirer_id,
            currency=currency,
            amount=sum(a for _, a in legs if a > 0),
            business_day=day,
            created_at=now,
        )
        .returning(s.journal.c.id)
    ).scalar_one()
    conn.execute(
        insert(s.entries),
        [
            {"journal_id": journal_id, "account_code": code, "amount": amount}
            for code, amount in legs
        ],
    )


def allocate(open_debts: Sequence[tuple[int, int]], amount: int) -> list[tuple[int, int]]:
    """Split ``amount`` over ``(debt_id, open)`` oldest first; returns ``(debt_id, paid)``."""
    result = []
    left = amount
    for debt_id, open_amount in open_debts:
        if left <= 0:
            break
        paid = min(open_amount, left)
        result.append((debt_id, paid))
        left -= paid
    return result


def amount_rule_violation(biller: Biller, amount: int, due: int) -> str | None:
    """Why ``amount`` breaks the biller's partial/overpayment rules against ``due``, if it does."""
    if amount > due and not biller.overpay_allowed:
        return "above the amount due"
    if amount < due and not biller.partial_allowed:
        return "below the amount due and partial payment is not allowed"
    return None


@dataclass
class PaymentOrder(Order):
    """A bill payment (0200) or payment advice (0220) for a biller whose debts the switch holds.

    An advice cannot be declined for a business reason: the acquirer already
    took the money. It pays what is open, oldest first; the rest stays on the
    biller's payable account (or in suspense for an unknown biller).
    """

    biller: Biller | None
    account: str
    period: str | None
    amount: int
    currency: str
    advice: bool
    channel: str
    rrn: str | None = None
    masked_pan: str | None = None
    pan_hash: str | None = None

    def apply(self, conn: Connection, now: datetime) -> Outcome:
        debts = self._open_debts(conn) if self.biller else []
        if not self.advice:
            if not self._customer_known(conn):
                return Outcome("14")
            due = sum(open_amount for _, open_amount in debts)
            if amount_rule_violation(self.biller, self.amount, due):  # type: ignore[arg-type]
                return Outcome("13", {"due": due})
        payment_id, auth_code = self._insert_payment(conn, now)
        paid = allocate(debts, self.amount)
        self._reduce_debts(conn, payment_id, paid)
        self._post(conn, payment_id, now)
        due_after = sum(o for _, o in debts) - sum(p for _, p in paid)
        return Outcome("00", {"payment_id": payment_id, "auth_code": auth_code, "due": due_after})

    def _customer_known(self, conn: Connection) -> bool:
        c = s.customers.c
        return (
            conn.execute(
                select(c.account).where(
                    c.biller_code == self.biller.code, c.account == self.account
                )  # type: ignore[union-attr]
            ).first()
            is not None
        )

    def _open_debts(self, conn: Connection) -> list[tuple[int, int]]:
        d = s.debts.c
        query = select(d.id, d.amount_open).where(
            d.biller_code == self.biller.code,
            d.account == self.account,
            d.amount_open > 0,  # type: ignore[union-attr]
        )
        if self.period:
            query = query.where(d.period == self.period)
        return [tuple(r) for r in conn.execute(query.order_by(d.period, d.id).with_for_update())]

    def _insert_payment(self, conn: Connection, now: datetime) -> tuple[int, str]:
        auth_code = f"{secrets.randbelow(1_000_000):06d}"
        payment_id = conn.execute(
            insert(s.payments)
            .values(
                acquirer_id=self.key.acquirer_id,
                terminal_id=self.key.terminal_id,
                channel=self.channel,
                biller_code=self.biller.code if self.biller else "",
                account=self.account,
                amount=self.amount,
                fee=self._fee(),
                reversed_amount=0,
                currency=self.currency,
                advice=self.advice,
                rrn=self.rrn,
                auth_code=auth_code,
                masked_pan=self.masked_pan,
                pan_hash=self.pan_hash,
                business_day=self.business_day,
                created_at=now,
            )
            .returning(s.payments.c.id)
        ).scalar_one()
        return payment_id, auth_code

    def _fee(self) -> int:
        return self.biller.fee_fixed if self.biller else 0

    def _reduce_debts(self, conn: Connection, payment_id: int, paid: list[tuple[int, int]]) -> None:
        for debt_id, amount in paid:
            conn.execute(
                update(s.debts)
                .where(s.debts.c.id == debt_id)
                .values(amount_open=s.debts.c.amount_open - amount)
            )
        if paid:
            conn.execute(
                insert(s.allocations),
                [
                    {"payment_id": payment_id, "debt_id": d, "amount": a, "reversed_amount": 0}
                    for d, a in paid
                ],
            )

    def _post(self, conn: Connection, payment_id: int, now: datetime) -> None:
        receivable = acc.acquirer_receivable(self.key.acquirer_id, self.currency)
        if self.biller:
            payable = acc.biller_payable(self.biller.code, self.currency)
        else:
            payable = acc.suspense(self.currency)
            acc.ensure_account(conn, payable, "suspense", "switch", self.currency)
        common = dict(
            payment_id=payment_id,
            acquirer_id=self.key.acquirer_id,
            currency=self.currency,
            day=self.business_day,
            now=now,
        )
        post(conn, "payment", legs=[(receivable, self.amount), (payable, -self.amount)], **common)
        if self._fee():
            legs = [(receivable, self._fee()), (acc.fee_income(self.currency), -self._fee())]
            post(conn, "fee", legs=legs, **common)


@dataclass
class ReversalOrder(Order):
    """A reversal (0400) or reversal advice (0420) of an earlier payment, full or partial.

    ``kept`` is the amount the payer finally paid (DE 95); a reversal moves the
    payment's reversed amount up to ``amount - kept``. Reversing again to the
    same point changes nothing.
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
        self._restore_debts(conn, payment.id, delta)
        conn.execute(
            update(s.payments).where(s.payments.c.id == payment.id).values(reversed_amount=target)
        )
        self._post(conn, payment, delta, target, now)
        return Outcome("00", facts)

    def _original_payment(self, conn: Connection):  # type: ignore[no-untyped-def]
        o = self.original
        r = s.requests.c
        payment_id = conn.execute(
            select(r.payment_id).where(
                _key_clause(o.acquirer_id, o.terminal_id, o.stan, o.transmitted),
                r.mti.in_(("0200", "0220")),
                r.payment_id.is_not(None),
            )
        ).scalar()
        if payment_id is None:
            return None
        return conn.execute(
            select(s.payments).where(s.payments.c.id == payment_id).with_for_update()
        ).one()

    def _restore_debts(self, conn: Connection, payment_id: int, delta: int) -> None:
        a, d = s.allocations.c, s.debts.c
        rows = conn.execute(
            select(a.debt_id, a.amount, a.reversed_amount)
            .join(s.debts, d.id == a.debt_id)
            .where(a.payment_id == payment_id)
            .order_by(d.period.desc(), d.id.desc())
        ).all()
        left = delta
        for debt_id, amount, reversed_amount in rows:
            back = min(amount - reversed_amount, left)
            if back <= 0:
                continue
            conn.execute(
                update(s.debts).where(d.id == debt_id).values(amount_open=d.amount_open + back)
            )
            conn.execute(
                update(s.allocations)
                .where(a.payment_id == payment_id, a.debt_id == debt_id)
                .values(reversed_amount=a.reversed_amount + back)
            )
            left -= back

    def _post(self, conn: Connection, payment: Any, delta: int, target: int, now: datetime) -> None:
        receivable = acc.acquirer_receivable(payment.acquirer_id, payment.currency)
        if payment.biller_code:
            payable = acc.biller_payable(payment.biller_code, payment.currency)
        else:
            payable = acc.suspense(payment.currency)
        common = dict(
            payment_id=payment.id,
            acquirer_id=payment.acquirer_id,
            currency=payment.currency,
            day=self.business_day,
            now=now,
        )
        post(conn, "reversal", legs=[(receivable, -delta), (payable, delta)], **common)
        if target == payment.amount and payment.fee:
            legs = [(receivable, -payment.fee), (acc.fee_income(payment.currency), payment.fee)]
            post(conn, "fee_reversal", legs=legs, **common)
