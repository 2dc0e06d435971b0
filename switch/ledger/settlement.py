"""Settling a closed business day: what each biller is owed for it, moved once.

A day is settled by whichever node gets its ``settlements`` row first: the row is
inserted under the day's primary key (``claim``), so on any number of nodes and
workers one run holds the day; the others see the row and leave the day alone.
A claim is a token with a lease (``claimed_until``): a run that dies leaves the day
to be claimed again once the lease has passed.

The transfer (``transfer``) is one transaction: it checks the claim is still the
caller's, computes each biller's lines from the ledger, posts one journal row of
kind ``settlement`` per biller and currency (payable -> settled, the day's net) and
stores the lines as the day's report, moving the row from ``claimed`` to
``posted``. A run that finds the row ``posted`` (a retry after a failed task)
moves nothing again. The close-of-day tasks then run (switch/close_of_day.py) and
``finish`` marks the day ``done``.

What a biller's lines are, from the journal rows of the day (their entries on the
biller's payable account, settlement rows left out; payments credit the payable):

- ``count``: payments of the day (a payment reversed later still counts: its
  reversal is in ``reversals`` of the day it was reversed on);
- ``reversals``: reversal rows of the day, full or partial;
- ``amount``: payments minus reversals (every entry that is not a fee);
- ``fees``: fees the biller pays (``fee`` rows debiting its payable, less
  ``fee_reversal`` rows crediting it back); payer-paid fees never touch it;
- ``net = amount - fees``: minus the sum of the day's entries on the payable,
  what moves to ``BIL:<code>:SETTLED:<cur>``. It may be negative (a day of
  reversals of earlier days' payments): then the transfer goes the other way.

The settlement journal row carries the business day it settles (no acquirer, no
payment), so it never counts in an acquirer's 0510 totals.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from enum import Enum

from sqlalchemy import Connection, func, select, true, update

from switch.ledger import accounts as acc
from switch.ledger import schema as s
from switch.ledger.journal import Posting, post_all
from switch.ledger.sql import insert_ignore, is_postgres, next_ids

CLAIMED, POSTED, DONE = "claimed", "posted", "done"
FEE_KINDS = ("fee", "fee_reversal")


class SettlementRefused(Exception):
    """A day that cannot be settled (still open, or its ledger not as expected): one line."""


class DayOpen(SettlementRefused):
    """The business day is still open: it closes at cut-over (or when a node starts after)."""


class ClaimLost(Exception):
    """The run's lease passed and another run claimed the day: this one stops."""


class Claim(Enum):
    """What a claim attempt found: the day is ours now, settled already, or held by another run."""

    TAKEN = "taken"
    DONE = "done"
    BUSY = "busy"


@dataclass(frozen=True)
class Line:
    """One biller's settlement in one currency for one business day (see the module doc)."""

    biller: str
    currency: str
    count: int
    reversals: int
    amount: int
    fees: int
    net: int
    bank_account: str | None
    journal_id: int | None  # the settlement journal row (None: nothing to move)


@dataclass(frozen=True)
class Transfer:
    """A day's lines, and whether this transfer posted them (else an earlier one had)."""

    lines: list[Line]
    posted: bool


@dataclass(frozen=True)
class Holder:
    """Who holds a day being settled, for a busy day's message."""

    node: str | None
    until: datetime | None
    state: str


_st = s.settlements.c


def claim(
    conn: Connection,
    day: date,
    token: str,
    node: str,
    now: datetime,
    lease: timedelta,
    again: bool = False,
) -> Claim:
    """Take ``day`` for the run ``token`` (commit right after: the claim must be seen).

    The insert comes first (SQLite takes its write lock with the first write). A row
    already there is taken over only if no live lease holds it and it is not done
    (``again``: done too, to write the day's files again). An open day is refused
    (DayOpen), leaving nothing behind."""
    inserted = conn.execute(
        insert_ignore(conn, s.settlements).values(
            business_day=day,
            state=CLAIMED,
            claim=token,
            claimed_until=now + lease,
            node=node[:100],
            created_at=now,
            updated_at=now,
        )
    ).rowcount
    _require_closed(conn, day)
    if inserted == 1:
        return Claim.TAKEN
    free = (_st.claimed_until.is_(None)) | (_st.claimed_until < now)
    # A row another run's transfer holds locked is busy: skipped, not waited for
    # (PostgreSQL; SQLite's first write above took the database lock).
    free_row = (
        select(_st.business_day)
        .where(_st.business_day == day, free, true() if again else _st.state != DONE)
        .with_for_update(skip_locked=True)
    )
    if conn.execute(free_row).first() is not None:
        conn.execute(
            update(s.settlements)
            .where(_st.business_day == day)
            .values(claim=token, claimed_until=now + lease, node=node[:100], updated_at=now)
        )
        return Claim.TAKEN
    state = conn.execute(select(_st.state).where(_st.business_day == day)).scalar_one()
    return Claim.DONE if state == DONE else Claim.BUSY


def holder(conn: Connection, day: date) -> Holder | None:
    row = conn.execute(
        select(_st.node, _st.claimed_until, _st.state).where(_st.business_day == day)
    ).first()
    return None if row is None else Holder(row.node, row.claimed_until, row.state)


def _require_closed(conn: Connection, day: date) -> None:
    d = s.business_days.c
    state = conn.execute(select(d.state).where(d.day == day)).scalar()
    if state != "closed":
        raise DayOpen(f"business day {day} is {'still open' if state else 'not closed'}")


def _hold(conn: Connection, day: date, token: str, now: datetime, **values: object) -> None:
    """Update the day's row if ``token`` still holds it (the first write of a transaction:
    it locks the row on PostgreSQL, takes the write lock on SQLite); else ClaimLost."""
    held = conn.execute(
        update(s.settlements)
        .where(_st.business_day == day, _st.claim == token)
        .values(updated_at=now, **values)
    ).rowcount
    if held != 1:
        raise ClaimLost(f"business day {day}: another run holds it now")


def transfer(conn: Connection, day: date, token: str, now: datetime) -> Transfer:
    """Post the day's settlement rows unless posted already; the day's lines either way."""
    _hold(conn, day, token, now)
    if is_postgres(conn):  # a day of a million payments: the sums may take a while
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
    row = conn.execute(select(_st.state, _st.report).where(_st.business_day == day)).one()
    if row.state != CLAIMED:
        return Transfer(_load(row.report), posted=False)
    _require_closed(conn, day)
    if _settlement_rows(conn, day):
        raise SettlementRefused(f"business day {day} has settlement rows but no settlement")
    lines = _post(conn, day, day_lines(conn, day), now)
    report = json.dumps([asdict(line) for line in lines], sort_keys=True)
    _hold(conn, day, token, now, state=POSTED, report=report)
    return Transfer(lines, posted=True)


def _post(conn: Connection, day: date, lines: list[Line], now: datetime) -> list[Line]:
    """One settlement journal row per line that moves money; the lines with its id."""
    moving = [line for line in lines if line.net]
    ids = iter(next_ids(conn, s.journal, len(moving)))
    postings, result = [], []
    for line in lines:
        if not line.net:
            result.append(line)
            continue
        legs = (
            (acc.biller_payable(line.biller, line.currency), line.net),
            (acc.biller_settled(line.biller, line.currency), -line.net),
        )
        postings.append(Posting("settlement", None, None, line.currency, day, legs))
        result.append(_with_journal(line, next(ids)))
    post_all(conn, postings, now, ids=[line.journal_id for line in result if line.net])
    return result


def _with_journal(line: Line, journal_id: int) -> Line:
    return Line(**{**asdict(line), "journal_id": journal_id})


def _settlement_rows(conn: Connection, day: date) -> int:
    j = s.journal.c
    return conn.execute(
        select(func.count()).where(j.business_day == day, j.kind == "settlement")
    ).scalar_one()


def day_lines(conn: Connection, day: date) -> list[Line]:
    """Each biller's lines for ``day`` from its payable account's entries (module doc),
    by biller code and currency; billers with no entries that day have none."""
    j, e, a, b = s.journal.c, s.entries.c, s.accounts.c, s.billers.c
    rows = conn.execute(
        select(a.owner, a.currency, j.kind, func.count(func.distinct(j.id)), func.sum(e.amount))
        .select_from(s.entries)
        .join(s.journal, j.id == e.journal_id)
        .join(s.accounts, a.code == e.account_code)
        .where(j.business_day == day, j.kind != "settlement", a.kind == "biller_payable")
        .group_by(a.owner, a.currency, j.kind)
    ).all()
    banks = dict(conn.execute(select(b.code, b.settlement_account)).all())
    sums: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
    for owner, currency, kind, n, total in rows:  # PostgreSQL sums BIGINT as NUMERIC
        sums.setdefault((owner, currency), {})[kind] = (int(n), int(total))
    return [_line(code, cur, kinds, banks.get(code)) for (code, cur), kinds in sorted(sums.items())]


def _line(code: str, currency: str, kinds: dict[str, tuple[int, int]], bank: str | None) -> Line:
    fees = sum(kinds.get(kind, (0, 0))[1] for kind in FEE_KINDS)  # debits of the payable
    net = -sum(total for _, total in kinds.values())
    return Line(
        biller=code,
        currency=currency,
        count=kinds.get("payment", (0, 0))[0],
        reversals=kinds.get("reversal", (0, 0))[0],
        amount=net + fees,
        fees=fees,
        net=net,
        bank_account=bank,
        journal_id=None,
    )


def renew(conn: Connection, day: date, token: str, now: datetime, lease: timedelta) -> None:
    """Extend the run's lease (between tasks); ClaimLost if another run took the day."""
    _hold(conn, day, token, now, claimed_until=now + lease)


def finish(conn: Connection, day: date, token: str, now: datetime) -> None:
    """The day is done: the claim is let go."""
    _hold(conn, day, token, now, state=DONE, claim=None, claimed_until=None, last_error=None)


def release(conn: Connection, day: date, token: str, now: datetime, error: str) -> None:
    """A run that failed lets the day go at once (the next start or cut-over retries it),
    saying why; nothing if another run holds it by now."""
    conn.execute(
        update(s.settlements)
        .where(_st.business_day == day, _st.claim == token)
        .values(claim=None, claimed_until=None, last_error=error[:200], updated_at=now)
    )


def unsettled_days(conn: Connection) -> list[date]:
    """Closed business days not settled to the end ("missed days"), oldest first."""
    d = s.business_days.c
    done = select(_st.business_day).where(_st.state == DONE)
    return list(
        conn.execute(
            select(d.day).where(d.state == "closed", d.day.not_in(done)).order_by(d.day)
        ).scalars()
    )


def stored_lines(conn: Connection, day: date) -> list[Line] | None:
    """The lines the transfer of ``day`` fixed, or None if the day is not posted yet."""
    report = conn.execute(select(_st.report).where(_st.business_day == day)).scalar()
    return None if report is None else _load(report)


def _load(report: str) -> list[Line]:
    return [Line(**item) for item in json.loads(report)]


def close_unopened(conn: Connection, day: date, today: date, now: datetime) -> None:
    """A past day no node ever opened (no traffic: the switch was down) is closed as it
    stands, so it can be settled (empty); an open day is left to its cut-over."""
    if day < today:
        closed = {"day": day, "state": "closed", "closed_at": now}
        conn.execute(insert_ignore(conn, s.business_days).values(**closed))
