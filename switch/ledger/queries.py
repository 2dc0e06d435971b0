"""Read-only queries the pipeline runs (off the reactor, in the read pool)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, bindparam, func, select

from routing.bills import Bill
from switch.ledger import schema as s
from switch.ledger.orders import RequestKey

_c, _d = s.customers.c, s.debts.c
# Built once: building a statement costs more Python than running it.
_NAME = select(_c.name).where(
    _c.biller_code == bindparam("biller"), _c.account == bindparam("account")
)
_OPEN_DEBTS = (
    select(_d.period, _d.amount_open)
    .where(_d.biller_code == bindparam("biller"), _d.account == bindparam("account"))
    .where(_d.amount_open > 0)
    .order_by(_d.period, _d.id)
)


def bill(conn: Connection, biller_code: str, account: str, period: str | None) -> Bill | None:
    """The open debts of an account, or None when the biller has no such account."""
    params = {"biller": biller_code, "account": account}
    name = conn.execute(_NAME, params).scalar()
    if name is None:
        return None
    rows = conn.execute(_OPEN_DEBTS, params)
    debts = tuple((p, a) for p, a in rows if not period or p == period)
    return Bill(name, sum(a for _, a in debts), debts)


_r = s.requests.c
# STAN and DE 7 lead the unique key, as in the writer's look-up.
_STORED = select(_r.request_hash, _r.response).where(
    _r.stan == bindparam("stan"),
    _r.transmitted == bindparam("transmitted"),
    _r.acquirer_id == bindparam("acquirer"),
    _r.terminal_id == bindparam("terminal"),
    _r.mti == bindparam("mti"),
)


@dataclass(frozen=True)
class StoredRequest:
    """A recorded request: its content hash and the response data elements it got."""

    request_hash: str
    response: dict[str, str]


def stored_request(conn: Connection, key: RequestKey) -> StoredRequest | None:
    """The request recorded under ``key`` (identity and base MTI), if any."""
    params = {
        "stan": key.stan,
        "transmitted": key.transmitted,
        "acquirer": key.acquirer_id,
        "terminal": key.terminal_id,
        "mti": key.mti,
    }
    row = conn.execute(_STORED, params).first()
    if row is None:
        return None
    return StoredRequest(row.request_hash, json.loads(row.response))


@dataclass(frozen=True)
class Totals:
    """An acquirer's totals for a business day, as the switch's ledger has them."""

    payments: int = 0
    payment_amount: int = 0
    reversals: int = 0
    reversal_amount: int = 0
    fees: int = 0

    @property
    def net(self) -> int:
        return self.payment_amount - self.reversal_amount + self.fees


_SIGNED_FEE = {"fee": 1, "fee_reversal": -1}


def acquirer_totals(conn: Connection, acquirer_id: str, day: date) -> Totals:
    j = s.journal.c
    rows = conn.execute(
        select(j.kind, func.count(), func.coalesce(func.sum(j.amount), 0))
        .where(j.acquirer_id == acquirer_id, j.business_day == day)
        .group_by(j.kind)
    ).all()
    by_kind = {kind: (int(n), int(total)) for kind, n, total in rows}  # PG sums are Decimal
    fees = sum(sign * by_kind.get(kind, (0, 0))[1] for kind, sign in _SIGNED_FEE.items())
    return Totals(
        payments=by_kind.get("payment", (0, 0))[0],
        payment_amount=by_kind.get("payment", (0, 0))[1],
        reversals=by_kind.get("reversal", (0, 0))[0],
        reversal_amount=by_kind.get("reversal", (0, 0))[1],
        fees=fees,
    )


def balances(conn: Connection) -> dict[str, int]:
    """Every account's balance, derived from its entries."""
    e = s.entries.c
    rows = conn.execute(select(e.account_code, func.sum(e.amount)).group_by(e.account_code))
    return {code: int(total) for code, total in rows}


def unbalanced_journal_rows(conn: Connection) -> list[int]:
    """Journal rows whose entries do not sum to zero (should always be empty)."""
    e = s.entries.c
    return list(
        conn.execute(
            select(e.journal_id).group_by(e.journal_id).having(func.sum(e.amount) != 0)
        ).scalars()
    )
