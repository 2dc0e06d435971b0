"""Business days in the database: which day a batch writes into, and closing a day.

A transaction belongs to the business day open when it commits, not when it was
received: a payment received at 22:59:59 whose batch commits after the cut-over has
closed the day belongs to the next one, so a day's totals never change after a 0500
read them. The ``business_days`` row of a day is the lock both sides agree on:

- every batch picks the first open day at or after its own clock's day and holds a
  key-share lock on that row until it commits (PostgreSQL; SQLite's writer holds the
  database lock anyway), before it writes anything; on PostgreSQL in the statement
  that locks its debts (``locks.lock_in_order``), else with ``open_day``;
- closing a day (the cut-over roll-over, or a 0500 for a past day still open) locks
  the row ``FOR UPDATE``, so it waits for the batches writing into the day to commit,
  and every later batch finds the day closed and writes into the next.

The newest day in the table is always open (a roll-over opens today before it closes
the days before it), so a batch finds a day to write into.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Connection, bindparam, select, update

from switch.ledger import schema as s
from switch.ledger.queries import Totals, acquirer_totals
from switch.ledger.sql import insert_ignore

_d = s.business_days.c
_FIRST_OPEN = (
    select(_d.day)
    .where(_d.day >= bindparam("clock_day"), _d.state == "open")
    .order_by(_d.day)
    .limit(1)
    .with_for_update(read=True, key_share=True)  # FOR KEY SHARE; nothing on SQLite
)


def open_day(conn: Connection, clock_day: date) -> date:
    """The business day a batch whose clock says ``clock_day`` writes into, locked until
    its commit against closing: the first open day from ``clock_day`` on (a later one if
    a node with a faster clock already closed it). One statement, except the first
    batch after a cut-over that no roll-over has opened yet, which opens its day."""
    day = conn.execute(_FIRST_OPEN, {"clock_day": clock_day}).scalar()
    candidate = clock_day
    while day is None:  # no open day from the clock's on: open the first free one
        conn.execute(insert_ignore(conn, s.business_days).values(day=candidate, state="open"))
        day = conn.execute(_FIRST_OPEN, {"clock_day": candidate}).scalar()
        candidate += timedelta(days=1)
    return day


def roll_over(conn: Connection, today: date, now: datetime) -> list[date]:
    """Open ``today`` and close every earlier open day; returns the days closed.

    Closing locks the days' rows first, so it waits for the batches still writing
    into them (``open_day``), and batches after it write into ``today``."""
    conn.execute(insert_ignore(conn, s.business_days).values(day=today, state="open"))
    closing = select(_d.day).where(_d.state == "open", _d.day < today).order_by(_d.day)
    closed = list(conn.execute(closing.with_for_update()).scalars())
    if closed:
        conn.execute(
            update(s.business_days).where(_d.day.in_(closed)).values(state="closed", closed_at=now)
        )
    return closed


def closed_day_totals(
    conn: Connection, acquirer_id: str, day: date, today: date, now: datetime
) -> Totals:
    """An acquirer's totals for ``day`` (a 0500). A past day is closed first if no
    roll-over has closed it yet (this node's cut-over may not have run), so the totals
    are final: no batch commits into the day after they were read. The current day (or
    a later one) is read as it stands."""
    if day < today:  # a write first: SQLite must not take its write lock after a read
        roll_over(conn, today, now)
        closed = {"day": day, "state": "closed", "closed_at": now}
        conn.execute(insert_ignore(conn, s.business_days).values(**closed))  # never opened
    return acquirer_totals(conn, acquirer_id, day)
