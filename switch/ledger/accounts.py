"""Ledger account codes, one naming rule in one place.

Acquirers owe the network what their terminals collected (receivable);
the network owes billers what was paid to them (payable).
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from switch.ledger import schema as s
from switch.ledger.sql import insert_ignore


def acquirer_receivable(acquirer_id: str, currency: str) -> str:
    return f"ACQ:{acquirer_id}:RECV:{currency}"


def biller_payable(biller_code: str, currency: str) -> str:
    return f"BIL:{biller_code}:PAY:{currency}"


WALLET_PREFIX = "WAL:"


def wallet(pan_hash: str) -> str:
    """An on-us card's wallet: named by its PAN's keyed hash, never by the PAN."""
    return f"{WALLET_PREFIX}{pan_hash[:16]}"


def is_wallet(code: str) -> bool:
    return code.startswith(WALLET_PREFIX)


def fee_income(currency: str) -> str:
    return f"FEE:INCOME:{currency}"


def suspense(currency: str) -> str:
    """Where an advice for an unknown biller is parked until an operator moves it."""
    return f"SUSPENSE:{currency}"


def ensure_accounts(conn: Connection) -> None:
    """Create the accounts every acquirer and biller needs, for each biller currency."""
    currencies = {r.currency for r in conn.execute(select(s.billers.c.currency))}
    rows = []
    for cur in currencies:
        rows.append((fee_income(cur), "fee_income", "switch", cur))
        rows.append((suspense(cur), "suspense", "switch", cur))
        for (acq,) in conn.execute(select(s.acquirers.c.id)):
            rows.append((acquirer_receivable(acq, cur), "acquirer_receivable", acq, cur))
    for code, cur in conn.execute(select(s.billers.c.code, s.billers.c.currency)):
        rows.append((biller_payable(code, cur), "biller_payable", code, cur))
    for code, kind, owner, cur in rows:
        ensure_account(conn, code, kind, owner, cur)


def ensure_account(conn: Connection, code: str, kind: str, owner: str, currency: str) -> None:
    conn.execute(
        insert_ignore(conn, s.accounts).values(code=code, kind=kind, owner=owner, currency=currency)
    )
