"""What the ledger writer does with a batch of money messages, inside one database transaction.

Every order first claims its request key (``requests`` is unique on acquirer,
terminal, STAN, transmission time and MTI), so a retransmission finds the
stored response and a different message under the same key gets 94, on any
number of switch nodes; what moved money, or a reversal of an original never
seen, also claims its transaction identity (identity.py), so a payment, its
advice and its reversal meet on one row. Then the orders apply their effects: payments
together (a handful of statements for the whole batch, which is what makes
group commit pay off), other orders one by one. Declines are decided before
anything is written, so a declined order leaves only its request row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, select

from switch.ledger import identity
from switch.ledger import schema as s
from switch.ledger.locks import lock_in_order
from switch.ledger.orders import (
    BatchOrder,
    Order,
    Outcome,
    Recorded,
    RequestKey,
    key_clause,
)
from switch.ledger.payments import PaymentOrder, allocate, amount_rule_violation
from switch.ledger.reversals import ReversalOrder, original_key, original_payments
from switch.ledger.sql import bind, insert_rows

__all__ = [
    "BatchOrder",
    "Order",
    "Outcome",
    "PaymentOrder",
    "Recorded",
    "RequestKey",
    "ReversalOrder",
    "allocate",
    "amount_rule_violation",
    "record",
    "record_batch",
]


def record(conn: Connection, order: Order, now: datetime) -> Recorded:
    """One order: claim its key, apply it, store its response (in ``conn``'s transaction)."""
    return record_batch(conn, [order], now)[0]


_KEY_COLUMNS = ("acquirer_id", "terminal_id", "stan", "transmitted", "mti")
_r = s.requests.c
_TAKEN = select(*(_r[name] for name in _KEY_COLUMNS)).where(
    _r.stan.in_(bindparam("stans", expanding=True)),
    _r.transmitted.in_(bindparam("times", expanding=True)),
)


class ConcurrentRequest(Exception):
    """Another transaction recorded one of this batch's request keys or transaction
    identities first (or the batch did not look them up): retry with the look-up."""


def record_batch(
    conn: Connection, orders: Sequence[Order], now: datetime, look_up: bool = True
) -> list[Recorded]:
    """Apply the orders whose key is new, store their request rows, answer the rest.

    Request rows go in with their responses, one statement per stage, and so do
    the transaction identities the stage claimed (identity.py). If another node
    inserted one of those keys or identities meanwhile, this batch fails
    (ConcurrentRequest) and nothing of it is kept; retried, the order finds the
    other node's row and answers from it.

    With ``look_up=False`` the keys are not looked up first: a key that exists
    (a retransmission) or an identity that does (a payment reversed first, an
    advice of an approved payment) fails the batch the same way, to be retried
    with the look-up. These are rare; the look-up would cost every batch.
    """
    taken = _taken(conn, orders) if look_up else set()
    first: dict[RequestKey, int] = {}
    for i, order in enumerate(orders):
        first.setdefault(order.key, i)
    new = [i for i, o in enumerate(orders) if o.key not in taken and first[o.key] == i]
    results: list[Recorded | None] = [None] * len(orders)
    lock_in_order(conn, [orders[i] for i in new])
    at = bind(conn, s.requests.c.created_at)(now)
    known = identity.look_up(conn, [orders[i] for i in new]) if look_up else {}
    for stage in _stages(conn, orders, new):
        for part in identity.parts(orders, stage):
            rows = []
            claims: dict[identity.Identity, identity.Known] = {}
            for i, outcome in zip(
                part, _settle_or_apply(conn, orders, part, now, known), strict=True
            ):
                response = orders[i].respond(outcome)
                results[i] = Recorded(outcome.code, response)
                rows.append(_request_row(orders[i], outcome, response, at))
                claim = identity.claimed(orders[i], outcome)
                if claim is not None:
                    claims[claim[0]] = claim[1]
            _insert_requests(conn, rows)
            if claims and not identity.insert(conn, claims, at):
                raise ConcurrentRequest("a transaction of this batch was recorded elsewhere")
            known.update(claims)
    return [
        res if res is not None else _earlier(conn, o)
        for res, o in zip(results, orders, strict=True)
    ]


def _settle_or_apply(
    conn: Connection,
    orders: Sequence[Order],
    part: list[int],
    now: datetime,
    known: dict[identity.Identity, identity.Known],
) -> list[Outcome]:
    """Orders whose transaction identity already holds something are answered from it
    (identity.settle, nothing moves); the others are applied."""
    settled = {i: identity.settle(orders[i], known) for i in part}
    rest = [i for i in part if settled[i] is None]
    applied = dict(zip(rest, _apply_stage(conn, orders, rest, now), strict=True)) if rest else {}
    return [settled[i] or applied[i] for i in part]


def _taken(conn: Connection, orders: Sequence[Order]) -> set[RequestKey]:
    """Which of these keys the database already has.

    STAN and DE 7 lead the unique index, so this is one index scan whose
    handful of false matches (other terminals) are dropped here.
    """
    wanted = {o.key for o in orders}
    params = {
        "stans": list({k.stan for k in wanted}),
        "times": list({k.transmitted for k in wanted}),
    }
    rows = conn.execute(_TAKEN, params)
    return {key for key in (RequestKey(*row) for row in rows) if key in wanted}


_REQUESTS = (
    "acquirer_id",
    "terminal_id",
    "stan",
    "transmitted",
    "mti",
    "request_hash",
    "response_code",
    "response",
    "payment_id",
    "created_at",
)
_JSON = json.JSONEncoder(sort_keys=True)  # json.dumps(sort_keys=True) builds one per call


def _request_row(
    order: Order, outcome: Outcome, response: dict[str, str], at: object
) -> tuple[object, ...]:
    """The request row, in ``_REQUESTS`` order; ``at`` is the batch's time, bound."""
    k = order.key
    return (
        k.acquirer_id,
        k.terminal_id,
        k.stan,
        k.transmitted,
        k.mti,
        order.request_hash,
        outcome.code,
        _JSON.encode(response),
        # the payment this request created (an acknowledged advice refers to another's)
        None if outcome.facts.get("acknowledged") else outcome.facts.get("payment_id"),
        at,
    )


def _insert_requests(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    if not rows:
        return
    tail = " ON CONFLICT DO NOTHING"
    if insert_rows(conn, s.requests, _REQUESTS, rows, tail) != len(rows):
        raise ConcurrentRequest("a request key of this batch was recorded elsewhere meanwhile")


def _stages(conn: Connection, orders: Sequence[Order], live: list[int]) -> list[list[int]]:
    """Payments, then reversals, each kind applied at once, when that gives exactly what
    arrival order gives (answers, DU, ledger); else arrival order (``_order_matters``)."""
    payments = [i for i in live if isinstance(orders[i], PaymentOrder)]
    reversals = [i for i in live if isinstance(orders[i], ReversalOrder)]
    if payments and reversals and len(payments) + len(reversals) == len(live):
        if not _order_matters(conn, orders, payments, reversals):
            return [payments, reversals]
    return _runs(orders, live)


def _runs(orders: Sequence[Order], live: list[int]) -> list[list[int]]:
    """Arrival order, in stages: a run of consecutive orders of one batch kind is one
    stage; any other order is a stage alone. Each stage's request rows are written
    before the next stage, so later orders see what earlier ones did."""
    stages: list[list[int]] = []
    for i in live:
        kind = type(orders[i])
        joinable = stages and issubclass(kind, BatchOrder) and type(orders[stages[-1][0]]) is kind
        if joinable:
            stages[-1].append(i)
        else:
            stages.append([i])
    return stages


def _order_matters(
    conn: Connection, orders: Sequence[Order], payments: list[int], reversals: list[int]
) -> bool:
    """Whether moving the payments before the reversals could change anything.

    Only a payment that arrived after a reversal is moved before it, so only such pairs
    can differ: a payment of the very transaction the reversal names (its original), or
    of an account the reversal touches (the debts it reopens decide the payment's answer,
    which debts and periods it pays, and its DU), or any on-us wallet payment (a reversal
    may refill the wallet). Reversals of other accounts, the common case, still batch.
    """
    if any(orders[i].wallet for i in payments):  # type: ignore[attr-defined]
        return True
    last_payment: dict[tuple[str, str, str, str], int] = {}
    for i in payments:  # a 0200 and its 0220 share the identity: the later one counts
        last_payment[original_key(orders[i].key)] = i
    touched: dict[tuple[str, str], int] = {}  # account -> first reversal touching it
    stored = original_payments(conn, [orders[i].original for i in reversals])  # type: ignore[attr-defined]
    for i in reversals:
        key = original_key(orders[i].original)  # type: ignore[attr-defined]
        if key in last_payment:
            if last_payment[key] > i:
                return True
            touched.setdefault(orders[last_payment[key]].account_key, i)  # type: ignore[attr-defined]
        elif key in stored:
            touched.setdefault((stored[key].biller_code, stored[key].account), i)
    return any(
        i > touched.get(orders[i].account_key, len(orders))  # type: ignore[attr-defined]
        for i in payments
    )


def _apply_stage(
    conn: Connection, orders: Sequence[Order], stage: list[int], now: datetime
) -> list[Outcome]:
    kind = type(orders[stage[0]])
    if issubclass(kind, BatchOrder):
        return kind.apply_batch(conn, [orders[i] for i in stage], now)
    return [orders[stage[0]].apply(conn, now)]


def _earlier(conn: Connection, order: Order) -> Recorded:
    """The answer for a key already taken: the stored response, or 94 if the content differs."""
    k = order.key
    row = conn.execute(
        select(s.requests.c.request_hash, s.requests.c.response_code, s.requests.c.response).where(
            key_clause(k.acquirer_id, k.terminal_id, k.stan, k.transmitted),
            s.requests.c.mti == k.mti,
        )
    ).one()
    if row.request_hash == order.request_hash:
        return Recorded(row.response_code, json.loads(row.response), replay=True)
    return Recorded("94", order.respond(Outcome("94")))
