"""Double-entry postings: a journal row per money movement, entries that sum to zero."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, insert

from switch.ledger import schema as s


@dataclass(frozen=True)
class Posting:
    kind: str  # payment, reversal, fee, fee_reversal, settlement
    payment_id: int | None
    acquirer_id: str | None
    currency: str
    day: date
    legs: tuple[tuple[str, int], ...]  # (account code, signed amount: debit > 0)

    def __post_init__(self) -> None:
        if sum(amount for _, amount in self.legs) != 0:
            raise ValueError(f"unbalanced {self.kind} posting")


_INSERT_JOURNAL = insert(s.journal).returning(s.journal.c.id, sort_by_parameter_order=True)


def post_all(conn: Connection, postings: Sequence[Posting], now: datetime) -> None:
    """Write the journal rows and their entries: two statements for any number of postings."""
    if not postings:
        return
    j = s.journal.c
    journal_ids = (
        conn.execute(
            insert(s.journal).returning(j.id, sort_by_parameter_order=True),
            [
                {
                    "kind": p.kind,
                    "payment_id": p.payment_id,
                    "acquirer_id": p.acquirer_id,
                    "currency": p.currency,
                    "amount": sum(a for _, a in p.legs if a > 0),
                    "business_day": p.day,
                    "created_at": now,
                }
                for p in postings
            ],
        )
        .scalars()
        .all()
    )
    conn.execute(
        insert(s.entries),
        [
            {"journal_id": jid, "account_code": code, "amount": amount}
            for jid, p in zip(journal_ids, postings, strict=True)
            for code, amount in p.legs
        ],
    )
