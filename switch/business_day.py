"""Business days: a configured cut-over time closes the day.

A transaction received at or after the cut-over (in the network's time zone)
belongs to the next calendar day's business day. The ``business_days``
table records which days are open and when each was closed; the app rolls
it over at every cut-over.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, update

from switch.ledger import schema as s
from switch.ledger.sql import insert_ignore


def business_day(moment: datetime, cutover: time, zone: str = "UTC") -> date:
    """The business day that ``moment`` (an aware datetime) belongs to."""
    local = moment.astimezone(ZoneInfo(zone))
    day = local.date()
    # A cut-over at midnight closes the calendar day itself: no shift.
    return day + timedelta(days=1) if cutover != time(0) and local.time() >= cutover else day


def next_cutover(moment: datetime, cutover: time, zone: str = "UTC") -> datetime:
    """The first cut-over instant strictly after ``moment``."""
    tz = ZoneInfo(zone)
    local = moment.astimezone(tz)
    candidate = datetime.combine(local.date(), cutover, tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), cutover, tz)
    return candidate


def roll_over(conn: Connection, today: date, now: datetime) -> list[date]:
    """Open ``today`` and close every earlier open day; returns the days closed."""
    d = s.business_days.c
    conn.execute(insert_ignore(conn, s.business_days).values(day=today, state="open"))
    closed = list(conn.execute(select(d.day).where(d.state == "open", d.day < today)).scalars())
    if closed:
        conn.execute(
            update(s.business_days).where(d.day.in_(closed)).values(state="closed", closed_at=now)
        )
    return closed
