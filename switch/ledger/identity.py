"""One financial transaction, one identity: a payment and its reversal meet here.

Spec section 5: a financial transaction is identified by DE 32 + 41 + 11 + 7 (the
request space), whatever its MTI. ``transactions`` holds one row per identity
that moved money or was reversed first:

- an approved 0200 or 0220 writes ``PAID`` with its payment;
- a reversal of an original never seen writes ``REVERSED_FIRST`` (a tombstone).

Rows go in with the stage's request rows, in the same statement (``sql.Writes``). The primary
key decides every race, across nodes too: whoever commits second finds the row
taken, its batch fails (``ConcurrentRequest``) and is retried with a look-up, which
then sees the other's row. Rows written by earlier stages of the same batch are
known in memory (``Known``), so a batch holding a reversal and then its original
needs no retry.

What a payment order meets under its identity (``settle``):

- a tombstone: 05, nothing moves (the acquirer gave up on it or refunded it);
- an approved payment of the same amount and currency: the same transaction
  told again (a 0220 of an approved 0200, or the 0200 of an advice): 00 with
  that payment's DE 38 and RN, nothing moves;
- an approved payment of another amount or currency: 94 (same identity,
  different content), nothing moves.

Nothing there (the 0200 was declined or never finished): the order is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select

from switch.ledger import schema as s
from switch.ledger.orders import PAID, REVERSED_FIRST, Order, Outcome, RequestKey
from switch.ledger.payments import PaymentOrder
from switch.ledger.reversals import ReversalOrder
from switch.ledger.splits import SplitPaymentOrder
from switch.ledger.sql import Writes

Identity = tuple[str, str, str, str]  # acquirer, terminal, STAN, DE 7 (reversals.original_key)
# Orders that pay (and claim ``PAID``): a payment or advice, or a payer code's split.
PAYS = (PaymentOrder, SplitPaymentOrder)


@dataclass(frozen=True)
class Known:
    """What an identity holds: a tombstone, or the payment (amount, currency, DE 38)."""

    state: str
    payment_id: int | None = None
    amount: int = 0
    currency: str = ""
    auth_code: str = ""


TOMBSTONE = Known(REVERSED_FIRST)


def of(key: RequestKey) -> Identity:
    return (key.acquirer_id, key.terminal_id, key.stan, key.transmitted)


_t, _p = s.transactions.c, s.payments.c
_LOOK_UP = (
    select(
        _t.acquirer_id,
        _t.terminal_id,
        _t.stan,
        _t.transmitted,
        _t.state,
        _t.payment_id,
        _p.amount,
        _p.currency,
        _p.auth_code,
    )
    .select_from(s.transactions)
    .outerjoin(s.payments, _p.id == _t.payment_id)
    .where(
        _t.stan.in_(bindparam("stans", expanding=True)),
        _t.transmitted.in_(bindparam("times", expanding=True)),
    )
)


def look_up(conn: Connection, orders: Sequence[Order]) -> dict[Identity, Known]:
    """What the database holds under the payment orders' identities (one read; only when
    the batch is retried with look-up, never on the first try of a batch)."""
    keys = [o.key for o in orders if isinstance(o, PAYS)]
    if not keys:
        return {}
    wanted = {of(k) for k in keys}
    params = {"stans": list({k.stan for k in keys}), "times": list({k.transmitted for k in keys})}
    known = {}
    for row in conn.execute(_LOOK_UP, params):
        identity = (row.acquirer_id, row.terminal_id, row.stan, row.transmitted)
        if identity in wanted:
            known[identity] = (
                TOMBSTONE
                if row.state == REVERSED_FIRST
                else Known(PAID, row.payment_id, row.amount, row.currency, row.auth_code)
            )
    return known


def parts(orders: Sequence[Order], stage: list[int]) -> list[list[int]]:
    """A stage of payments cut, in arrival order, before a payment whose identity an
    earlier one of the stage has (a 0200 and its 0220): that one must see what the
    first did. Other stages stay whole."""
    if not isinstance(orders[stage[0]], PaymentOrder):
        return [stage]
    result: list[list[int]] = [[]]
    seen: set[Identity] = set()
    for i in stage:
        identity = of(orders[i].key)
        if identity in seen:
            result.append([])
            seen = set()
        seen.add(identity)
        result[-1].append(i)
    return result


def settle(order: Order, known: dict[Identity, Known]) -> Outcome | None:
    """The answer of a payment order whose identity already holds something, or None."""
    if not isinstance(order, PAYS):
        return None
    found = known.get(of(order.key))
    if found is None:
        return None
    if found.state == REVERSED_FIRST:
        return Outcome("05")
    if (found.amount, found.currency) != (order.amount, order.currency):
        return Outcome("94")
    facts = {"payment_id": found.payment_id, "auth_code": found.auth_code, "acknowledged": True}
    return Outcome("00", facts)


def claimed(order: Order, outcome: Outcome) -> tuple[Identity, Known] | None:
    """The identity row this order's outcome writes, if any."""
    if outcome.claim is None:
        return None
    if isinstance(order, ReversalOrder):
        return of(order.original), TOMBSTONE
    p: PaymentOrder | SplitPaymentOrder = order  # type: ignore[assignment]
    facts = outcome.facts
    return of(p.key), Known(PAID, facts["payment_id"], p.amount, p.currency, facts["auth_code"])


_COLUMNS = (
    "stan",
    "transmitted",
    "acquirer_id",
    "terminal_id",
    "state",
    "payment_id",
    "created_at",
)


def insert(writes: Writes, claims: dict[Identity, Known], at: Any) -> None:
    """Write the claims (one insert, sent with the stage's request rows and counted:
    fewer rows than claims means another transaction holds one of them).

    Rows go in key order, so two batches claiming the same identities wait for each
    other in one order rather than in a cycle."""
    rows = sorted(
        (stan, transmitted, acquirer, terminal, k.state, k.payment_id, at)
        for (acquirer, terminal, stan, transmitted), k in claims.items()
    )
    writes.insert(s.transactions, _COLUMNS, rows, " ON CONFLICT DO NOTHING", counted=True)
