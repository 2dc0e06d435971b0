"""Payer codes: one code (DE 48 PC) standing for a payer's accounts at several billers.

Reference data: read per request on the read pool (``look_up``: the code's accounts
and the open debts of those whose debts the switch holds, one read transaction),
written by ``billswitch payers`` (``add``, ``remove``). A code stands for at most
``MAX_ACCOUNTS`` accounts, so that a payment's AL (one entry per account paid, up to
54 characters each) always fits DE 48 beside PC, RN and DU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, insert, select, tuple_

from switch.ledger import schema as s
from switch.ledger.payer_split import Debt

MAX_ACCOUNTS = 16
CODE = re.compile(r"[A-Za-z0-9]{1,32}")  # DE 48 PC, as this switch issues them
# DE 48 AC (ans..32), printable, without blanks and without ":" and ";", which separate
# the entries of DL and AL.
ACCOUNT = re.compile(r"[\x21-\x39\x3c-\x7e]{1,32}")

_pc, _pa, _d = s.payer_codes.c, s.payer_accounts.c, s.debts.c


@dataclass(frozen=True)
class Holding:
    """One account a payer code stands for; ``position``: the order it was added in."""

    biller: str
    account: str
    position: int


@dataclass(frozen=True)
class PayerView:
    """What a request by payer code reads: its accounts and the held ones' open debts."""

    holdings: tuple[Holding, ...]
    held_debts: tuple[Debt, ...]


_EXISTS = select(_pc.code).where(_pc.code == bindparam("code"))
_HOLDINGS = (
    select(_pa.biller_code, _pa.account, _pa.position)
    .where(_pa.payer_code == bindparam("code"))
    .order_by(_pa.position)
)
_OPEN = (
    select(_d.id, _d.biller_code, _d.account, _d.period, _d.amount_open)
    .where(tuple_(_d.biller_code, _d.account).in_(bindparam("keys", expanding=True)))
    .where(_d.amount_open > 0)
    .order_by(_d.period, _d.id)
)


def look_up(conn: Connection, code: str, held_billers: frozenset[str]) -> PayerView | None:
    """The code's accounts, and the open debts of those at ``held_billers`` (no lock: the
    ledger decides a payment's held parts again under lock); None for an unknown code."""
    if conn.execute(_EXISTS, {"code": code}).first() is None:
        return None
    holdings = tuple(Holding(*row) for row in conn.execute(_HOLDINGS, {"code": code}))
    keys = [(h.biller, h.account) for h in holdings if h.biller in held_billers]
    debts: tuple[Debt, ...] = ()
    if keys:
        rows = conn.execute(_OPEN, {"keys": keys})
        debts = tuple(Debt(b, a, period, int(amount), i) for i, b, a, period, amount in rows)
    return PayerView(holdings, debts)


# -- what ``billswitch payers`` writes --------------------------------------


class PayerCodeError(ValueError):
    """A change that cannot be made (the message says why, in one line)."""


def parse_pair(text: str) -> tuple[str, str]:
    """``BILLER:ACCOUNT``."""
    biller, sep, account = text.partition(":")
    if not sep or not biller or not account:
        raise PayerCodeError(f"{text!r}: expected BILLER:ACCOUNT")
    if not re.fullmatch(r"[A-Za-z0-9]{1,8}", biller):
        raise PayerCodeError(f"{text!r}: a biller code is 1-8 letters and digits")
    if not ACCOUNT.fullmatch(account):
        raise PayerCodeError(
            f"{text!r}: an account is 1-32 printable characters, no blank, ':' or ';'"
        )
    return biller, account


def check_code(code: str) -> str:
    if not CODE.fullmatch(code):
        raise PayerCodeError(f"{code!r}: a payer code is 1-32 letters and digits")
    return code


def add(conn: Connection, code: str, pairs: Sequence[tuple[str, str]], now: datetime) -> int:
    """Register ``code`` (if new) for ``pairs``; returns how many were new. Unknown
    billers and a code past ``MAX_ACCOUNTS`` are refused whole."""
    check_code(code)
    known = set(conn.execute(select(s.billers.c.code)).scalars())
    unknown = sorted({b for b, _ in pairs if b not in known})
    if unknown:
        raise PayerCodeError(f"unknown biller {', '.join(unknown)} (see: billswitch billers list)")
    if conn.execute(_EXISTS, {"code": code}).first() is None:
        conn.execute(insert(s.payer_codes).values(code=code, created_at=now))
    have = {(h.biller, h.account) for h in _holdings(conn, code)}
    new = list(dict.fromkeys(p for p in pairs if p not in have))
    if len(have) + len(new) > MAX_ACCOUNTS:
        raise PayerCodeError(
            f"{code}: a payer code stands for at most {MAX_ACCOUNTS} accounts"
            f" ({len(have)} now, {len(new)} more asked)"
        )
    last = conn.execute(
        select(func.coalesce(func.max(_pa.position), 0)).where(_pa.payer_code == code)
    ).scalar_one()
    rows = [
        {"payer_code": code, "biller_code": b, "account": a, "position": last + i}
        for i, (b, a) in enumerate(new, 1)
    ]
    if rows:
        conn.execute(insert(s.payer_accounts), rows)
    return len(rows)


def remove(conn: Connection, code: str, pairs: Sequence[tuple[str, str]]) -> int:
    """Remove ``pairs`` from ``code`` (none given: the whole code); a code left with no
    account is removed too. Returns how many accounts went."""
    if conn.execute(_EXISTS, {"code": code}).first() is None:
        raise PayerCodeError(f"{code}: no such payer code")
    have = {(h.biller, h.account) for h in _holdings(conn, code)}
    missing = [f"{b}:{a}" for b, a in pairs if (b, a) not in have]
    if missing:
        raise PayerCodeError(f"{code} does not hold {', '.join(missing)}")
    gone = set(pairs) if pairs else have
    for biller, account in gone:
        conn.execute(
            delete(s.payer_accounts).where(
                _pa.payer_code == code, _pa.biller_code == biller, _pa.account == account
            )
        )
    if gone == have:
        conn.execute(delete(s.payer_codes).where(_pc.code == code))
    return len(gone)


def _holdings(conn: Connection, code: str) -> list[Holding]:
    return [Holding(*row) for row in conn.execute(_HOLDINGS, {"code": code})]


def listing(conn: Connection, codes: Iterable[str] = ()) -> dict[str, list[Holding]]:
    """Every payer code (or those named) with its accounts, in order."""
    query = select(_pc.code).order_by(_pc.code)
    wanted = list(codes)
    if wanted:
        query = query.where(_pc.code.in_(wanted))
    return {code: _holdings(conn, code) for code in conn.execute(query).scalars()}
