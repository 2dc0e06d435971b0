"""Double-entry postings: a journal row per money movement, entries that sum to zero."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection

from switch.ledger import schema as s
from switch.ledger.accounts import ensure_used
from switch.ledger.sql import Writes, bind, next_ids


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

    @property
    def movement(self) -> int:
        """The journal row's amount: what the debit legs move (always positive)."""
        return sum(amount for _, amount in self.legs if amount > 0)


_JOURNAL = (
    "id",
    "kind",
    "payment_id",
    "acquirer_id",
    "amount",
    "currency",
    "business_day",
    "created_at",
)
_ENTRIES = ("journal_id", "account_code", "amount")


def post_all(
    conn: Connection,
    postings: Sequence[Posting],
    now: datetime,
    writes: Writes | None = None,
    ids: Sequence[int] | None = None,
) -> None:
    """Write the journal rows and their entries: two inserts for any number of postings
    (the journal ids are taken first, so the entries need no RETURNING). With ``writes``
    they join the stage's other writes (sent with them), and ``ids`` may be drawn
    already (``sql.next_ids_of``, one statement with the payments' ids)."""
    if not postings:
        return
    ensure_used(conn, {code for p in postings for code, _ in p.legs})
    if ids is None:
        ids = next_ids(conn, s.journal, len(postings))
    day = bind(conn, s.journal.c.business_day)
    at = bind(conn, s.journal.c.created_at)(now)
    journal = [
        (jid, p.kind, p.payment_id, p.acquirer_id, p.movement, p.currency, day(p.day), at)
        for jid, p in zip(ids, postings, strict=True)
    ]
    entries = [
        (jid, code, amount) for jid, p in zip(ids, postings, strict=True) for code, amount in p.legs
    ]
    out = writes if writes is not None else Writes(conn)
    out.insert(s.journal, _JOURNAL, journal)
    out.insert(s.entries, _ENTRIES, entries)
    if writes is None:
        out.run()
