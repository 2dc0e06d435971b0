"""Row locks taken in one order by every ledger transaction, so writers never deadlock.

Several writers (nodes, worker processes) share PostgreSQL. A batch's stages
would otherwise lock rows as they go: payments lock their debts and wallets,
then reversals lock the originals, the debts they reopen and the wallets they
refund. Two batches doing that in different orders deadlock, and PostgreSQL
only notices after ``deadlock_timeout`` (1 s), then fails one batch, which is
retried. So each batch first locks everything it may touch, table by table
(the originals' transactions rows, debts, wallets), each in key order; the stages' own
``FOR UPDATE`` then find the locks already held. Wallets are the last table, so
a batch whose reversals refill none leaves them to the payment stage's funds
read, which locks them in the same order (one statement less per batch).
SQLite needs none of this: its writer holds the database lock from the start.

The debts' lock also takes the batch's business day (``days.open_day``'s key-share
lock on the first open day), in the same statement: each statement is a round trip
the whole batch waits for, and at one request in flight per terminal that was a
measurable part of every request's time (docs/benchmarks.md). A closing day locks
no debts, so taking the day after the originals cannot wait in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection

from switch.ledger import accounts as acc
from switch.ledger.orders import Order
from switch.ledger.payments import PaymentOrder
from switch.ledger.reversals import (
    ReversalOrder,
    allocated_debts,
    original_payments,
    payment_ids,
)
from switch.ledger.splits import SplitPaymentOrder
from switch.ledger.sql import in_list, is_postgres

_DEBTS = "SELECT id FROM debts WHERE {where} ORDER BY id FOR UPDATE"
# The same, with the first open business day from the clock's day (days._FIRST_OPEN):
# one row, whatever the debts; a locking clause in a sub-SELECT locks the rows it returns.
_DAY_AND_DEBTS = (
    "SELECT (SELECT day FROM business_days WHERE day >= %s AND state = 'open'"
    " ORDER BY day LIMIT 1 FOR KEY SHARE), ARRAY({debts})"
)
_WALLETS = (
    "SELECT wallet_account FROM cards WHERE wallet_account IN ({keys})"
    " ORDER BY wallet_account FOR UPDATE"
)


@dataclass
class Locked:
    """What taking the locks found: the open business day, if the debts' statement took
    it (else the caller takes it, ``days.open_day``), and the reversals' originals as
    read (PostgreSQL; None where nothing was read)."""

    day: date | None = None
    originals: dict[tuple[str, str, str, str], Any] | None = field(default=None)


def lock_in_order(
    conn: Connection, orders: Sequence[Order], clock_day: date | None = None
) -> Locked:
    """PostgreSQL: lock the rows ``orders`` may change, in the one order all batches use;
    with ``clock_day``, the business day too when there are debts to lock."""
    if not is_postgres(conn):
        return Locked()
    payments = [o for o in orders if isinstance(o, PaymentOrder)]
    reversals = [o for o in orders if isinstance(o, ReversalOrder)]
    originals = original_payments(conn, [r.original for r in reversals])  # locked in key order
    accounts = {o.account_key for o in payments if o.debts_held}
    for split in (o for o in orders if isinstance(o, SplitPaymentOrder)):
        accounts.update((biller.code, account) for biller, account in split.held)
    debts = allocated_debts(conn, payment_ids(originals.values()))
    day = _lock_debts(conn, accounts, debts, clock_day)
    refilled = {p.debit_account for p in originals.values() if acc.is_wallet(p.debit_account)}
    if refilled:  # else the payments' own wallet read locks them last, in the same order
        keys, params = in_list(conn, sorted(refilled | {o.wallet for o in payments if o.wallet}))
        conn.exec_driver_sql(_WALLETS.format(keys=keys), params)
    return Locked(day, originals if reversals else None)


def _lock_debts(
    conn: Connection, accounts: set[tuple[str, str]], debt_ids: set[int], clock_day: date | None
) -> date | None:
    where, params = [], ()
    if accounts:
        keys, params = in_list(conn, sorted(accounts))
        where.append(f"(biller_code, account) IN ({keys})")
    if debt_ids:
        ids, more = in_list(conn, sorted(debt_ids))
        where.append(f"id IN ({ids})")
        params += more
    if not where:
        return None
    debts = _DEBTS.format(where=" OR ".join(where))
    if clock_day is None:
        conn.exec_driver_sql(debts, params)
        return None
    row = conn.exec_driver_sql(_DAY_AND_DEBTS.format(debts=debts), (clock_day, *params)).one()
    return row[0]
