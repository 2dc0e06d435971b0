"""Business days: a configured cut-over time closes the day.

A transaction received at or after the cut-over (in the network's time zone)
belongs to the next calendar day's business day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def business_day(moment: datetime, cutover: time, zone: str = "UTC") -> date:
    """The business day that ``moment`` (an aware datetime) belongs to."""
    local = moment.astimezone(ZoneInfo(zone))
    day = local.date()
    return day + timedelta(days=1) if local.time() >= cutover else day
