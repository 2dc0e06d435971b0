"""Business days: a configured cut-over time closes the day.

A moment at or after the cut-over (in the network's time zone) belongs to the
next calendar day's business day. The ``business_days`` table records which
days are open and when each was closed; the app rolls it over at every
cut-over. Money takes the day of its commit, not of its receipt: the ledger
writer asks ``switch.ledger.days.open_day`` with the batch's own clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from switch.ledger.days import roll_over

__all__ = ["business_day", "next_cutover", "roll_over"]


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
