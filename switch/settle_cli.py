"""``billswitch settle --business-day D``: settle a closed day by hand (a missed day).

The same job the switch runs at cut-over (switch/close_of_day.py), for one day:
a day not settled yet is settled (transfer, report, every close-of-day task); a
day settled already moves nothing and gets its files written again, the same
bytes. An open day is refused: it closes at cut-over. A past day no node ever
opened (the switch was down all day) is closed as it stands, and settles empty.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from switch.business_day import business_day
from switch.close_of_day import Outcome, Result, close_day, node_name
from switch.config import Settings
from switch.ledger.settlement import DayOpen, SettlementRefused, close_unopened, holder
from switch.settlement_report import paths


class SettleCommandError(Exception):
    """A day that cannot be settled now: one line."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    settle = sub.add_parser(
        "settle",
        help="settle a closed business day by hand (a day missed at cut-over); again:"
        " nothing moves, the report is written again",
        epilog="example: billswitch settle --business-day 2026-11-22 --home /var/lib/billswitch",
    )
    settle.add_argument(
        "--business-day", type=_day, required=True, help="the day to settle, YYYY-MM-DD"
    )
    return settle


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    day: date = args.business_day
    now = datetime.now(UTC)
    today = business_day(now, settings.cutover, settings.timezone)
    with engine.begin() as conn:
        close_unopened(conn, day, today, now)
    try:
        outcome = close_day(engine, day, settings.home, node=node_name("settle"), again=True)
    except DayOpen:
        raise SettleCommandError(
            f"business day {day} is open: it closes at the cut-over"
            f" ({settings.cutover:%H:%M} {settings.timezone}); settle it after that"
        ) from None
    except SettlementRefused as exc:
        raise SettleCommandError(str(exc)) from None
    if outcome.result is Result.BUSY:
        raise SettleCommandError(_busy(engine, day))
    if outcome.result is Result.FAILED:
        raise SettleCommandError(f"business day {day} not settled: {outcome.error}")
    print(describe(day, outcome, settings))
    return 0


def _busy(engine: Engine, day: date) -> str:
    with engine.connect() as conn:
        held = holder(conn, day)
    who = "another run"
    if held is not None and held.until is not None:
        who = f"{held.node} until {held.until:%Y-%m-%dT%H:%M:%S}"
    return f"business day {day} is being settled by {who}; try again later"


def describe(day: date, outcome: Outcome, settings: Settings) -> str:
    net: dict[str, int] = {}
    for line in outcome.lines:
        net[line.currency] = net.get(line.currency, 0) + line.net
    nets = ", ".join(f"{amount} in {cur}" for cur, amount in sorted(net.items())) or "nothing"
    how = "settled" if outcome.posted else "already settled, nothing moved; files written again"
    csv_path, json_path = paths(settings.home, day)
    return (
        f"business day {day} {how}: {len(outcome.lines)} biller lines, net {nets};"
        f" report {csv_path} and {json_path}"
    )


def fail(message: str) -> int:
    print(f"billswitch settle: {message}", file=sys.stderr)
    return 2
