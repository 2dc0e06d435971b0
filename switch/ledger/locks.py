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
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from switch.ledger import accounts as acc
from switch.ledger.orders import Order
from switch.ledger.payments import PaymentOrder
from switch.ledger.reversals import ReversalOrder, allocated_debts, original_payments
from switch.ledger.sql import in_list, is_postgres

_DEBTS = "SELECT id FROM debts WHERE {where} ORDER BY id FOR UPDATE"
_WALLETS = (
    "SELECT wallet_account FROM cards WHERE wallet_account IN ({keys})"
    " ORDER BY wallet_account FOR UPDATE"
)


def lock_in_order(conn: Connection, orders: Sequence[Order]) -> None:
    """PostgreSQL: lock the rows ``orders`` may change, in the one order all batches use."""
    if not is_postgres(conn):
        return
    payments = [o for o in orders if isinstance(o, PaymentOrder)]
    reversals = [o for o in orders if isinstance(o, ReversalOrder)]
    originals = original_payments(conn, [r.original for r in reversals])  # locked in key order
    accounts = {o.account_key for o in payments if o.debts_held}
    _lock_debts(conn, accounts, allocated_debts(conn, {p.id for p in originals.values()}))
    refilled = {p.debit_account for p in originals.values() if acc.is_wallet(p.debit_account)}
    if refilled:  # else the payments' own wallet read locks them last, in the same order
        keys, params = in_list(conn, sorted(refilled | {o.wallet for o in payments if o.wallet}))
        conn.exec_driver_sql(_WALLETS.format(keys=keys), params)


def _lock_debts(conn: Connection, accounts: set[tuple[str, str]], debt_ids: set[int]) -> None:
    where, params = [], ()
    if accounts:
        keys, params = in_list(conn, sorted(accounts))
        where.append(f"(biller_code, account) IN ({keys})")
    if debt_ids:
        ids, more = in_list(conn, sorted(debt_ids))
        where.append(f"id IN ({ids})")
        params += more
    if where:
        conn.exec_driver_sql(_DEBTS.format(where=" OR ".join(where)), params)
