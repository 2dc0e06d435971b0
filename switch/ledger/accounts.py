"""Ledger account codes, one naming rule in one place.

Acquirers owe the network what their terminals collected (receivable);
the network owes billers what was paid to them (payable) until a business day is
settled, when each biller's net for the day moves to its settled account (what
the network's bank pays out: switch/ledger/settlement.py).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, select

from switch.ledger import schema as s
from switch.ledger.sql import insert_ignore, insert_rows


def acquirer_receivable(acquirer_id: str, currency: str) -> str:
    return f"ACQ:{acquirer_id}:RECV:{currency}"


def biller_payable(biller_code: str, currency: str) -> str:
    return f"BIL:{biller_code}:PAY:{currency}"


def biller_settled(biller_code: str, currency: str) -> str:
    """What settled business days moved out of the biller's payable account: owed to
    the biller's bank account, paid by the bank outside the switch."""
    return f"BIL:{biller_code}:SETTLED:{currency}"


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


def split_clearing(currency: str) -> str:
    """Where a payer-code split passes through (switch/ledger/splits.py): the head's
    journal row moves the acquirer's money in, each part's moves it on to its biller, so
    it is always back to zero once a split or its reversal is posted."""
    return f"SPLIT:{currency}"


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


# How an account comes into being from its code alone: (pattern, kind, owner group or
# fixed owner, currency group). Wallets are not here: they are made with their card.
_MADE_ON_USE: tuple[tuple[re.Pattern[str], str, int | str, int], ...] = (
    (re.compile(r"ACQ:([^:]+):RECV:([^:]+)"), "acquirer_receivable", 1, 2),
    (re.compile(r"BIL:([^:]+):PAY:([^:]+)"), "biller_payable", 1, 2),
    (re.compile(r"BIL:([^:]+):SETTLED:([^:]+)"), "biller_settled", 1, 2),
    (re.compile(r"FEE:INCOME:([^:]+)"), "fee_income", "switch", 1),
    (re.compile(r"SUSPENSE:([^:]+)"), "suspense", "switch", 1),
    (re.compile(r"SPLIT:([^:]+)"), "split_clearing", "switch", 1),
)
_ACCOUNT_COLUMNS = ("code", "kind", "owner", "currency")


def account_row(code: str) -> tuple[str, str, str, str] | None:
    """The ``accounts`` row that ``code`` names, if it is a kind made on first use."""
    for pattern, kind, owner, currency in _MADE_ON_USE:
        m = pattern.fullmatch(code)
        if m:
            return (code, kind, m.group(owner) if isinstance(owner, int) else owner, m[currency])
    return None


class _Known:
    """Account codes known to exist in one database (accounts are never deleted).

    A code becomes known only once an insert-if-missing found it already there: an
    insert by this very batch may still roll back, and then the code must be tried again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()

    def missing(self, engine: Engine, codes: Iterable[str]) -> list[str]:
        with self._lock:
            known = self._codes.setdefault(engine, set())
        return sorted({c for c in codes if c not in known})

    def add(self, engine: Engine, codes: Iterable[str]) -> None:
        with self._lock:
            self._codes.setdefault(engine, set()).update(codes)


_KNOWN = _Known()


def ensure_used(conn: Connection, codes: Iterable[str]) -> None:
    """Make the accounts a batch posts to exist, so a biller or acquirer added while the
    switch runs needs no restart: codes this process already knows cost nothing; the
    others, one insert-if-missing for the batch (until a later batch finds them there)."""
    missing = _KNOWN.missing(conn.engine, codes)
    if not missing:
        return
    rows = [row for row in map(account_row, missing) if row is not None]
    inserted = insert_rows(conn, s.accounts, _ACCOUNT_COLUMNS, rows, " ON CONFLICT DO NOTHING")
    if inserted == 0:  # all were there already, committed by someone: known for good
        _KNOWN.add(conn.engine, missing)
