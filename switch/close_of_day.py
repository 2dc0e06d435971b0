"""The close-of-day job: each closed business day settled once, then its tasks.

Every node and worker runs it in a thread (never on the reactor) after each
roll-over of the business day, at start and at every cut-over (switch/app.py);
``billswitch settle`` runs it by hand for one day. It takes the days that are
closed but not settled to the end ("missed days": the switch was down at
cut-over, a task failed, a node died mid-way), oldest first, and for each:

1. claims the day (``settlements`` row under the day's key: one run holds it,
   the others skip it; a dead run's lease passes after ``LEASE``);
2. the settlement transfer, one transaction (switch/ledger/settlement.py);
3. the tasks of ``TASKS`` in order, the lease renewed before each;
4. marks the day done.

A failure is logged, the day let go with its reason (``settlements.last_error``)
and the whole day tried again at the next start or cut-over of any node: the
transfer is never made twice (the row says it was), and the tasks must be
idempotent (each writes its files whole, the same bytes again).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path

import structlog
from sqlalchemy import Engine

from switch.ledger import settlement
from switch.ledger.settlement import Claim, ClaimLost, Line
from switch.payment_files import write_day_files
from switch.settlement_report import write_report

log = structlog.get_logger(__name__)

Task = Callable[[Engine, date, Path], None]

# What runs after a day's settlement transfer, in order: (name for the log, task).
# A task gets the engine, the business day and the switch's home; it must be
# idempotent (each writes its files whole: the same bytes again).
TASKS: tuple[tuple[str, Task], ...] = (
    ("settlement report", write_report),
    ("payment files", write_day_files),
)

# How long a run holds a day without renewing its claim: longer than any one task
# takes, so a live run is never overtaken; a dead run's day waits this long.
LEASE = timedelta(minutes=15)


class Result(Enum):
    SETTLED = "settled"  # this run did the day (moved its money, or had moved it before)
    ALREADY = "already settled"  # done before: nothing to do
    BUSY = "busy"  # another run holds the day
    FAILED = "failed"  # logged; the day is tried again at the next start or cut-over


@dataclass(frozen=True)
class Outcome:
    result: Result
    lines: tuple[Line, ...] = ()
    posted: bool = False  # this run made the transfer (not an earlier one)
    error: str | None = None


def node_name(role: str | int | None = None) -> str:
    """Who runs the job, for the ``settlements`` row and an operator: host:pid[/role]."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return name if role is None else f"{name}/{role}"


def _now() -> datetime:
    return datetime.now(UTC)


def close_day(
    engine: Engine,
    day: date,
    home: Path,
    *,
    node: str,
    tasks: tuple[tuple[str, Task], ...] = TASKS,
    again: bool = False,
    clock: Callable[[], datetime] = _now,
) -> Outcome:
    """Settle ``day`` and run its tasks, unless another run holds it or it is done
    (``again``: a done day's tasks run again). An open day raises DayOpen."""
    token = uuid.uuid4().hex
    with engine.begin() as conn:
        got = settlement.claim(conn, day, token, node, clock(), LEASE, again)
    if got is not Claim.TAKEN:
        return Outcome(Result.ALREADY if got is Claim.DONE else Result.BUSY)
    step = "transfer"
    try:
        with engine.begin() as conn:
            done = settlement.transfer(conn, day, token, clock())
        for name, task in tasks:
            step = name
            with engine.begin() as conn:
                settlement.renew(conn, day, token, clock(), LEASE)
            task(engine, day, home)
        with engine.begin() as conn:
            settlement.finish(conn, day, token, clock())
    except ClaimLost as exc:
        log.warning("close of day overtaken", day=day.isoformat(), step=step, error=str(exc))
        return Outcome(Result.BUSY)
    except Exception as exc:
        error = f"{step}: {type(exc).__name__}: {exc}"
        log.error("close of day failed; tried again at the next start or cut-over",
                  day=day.isoformat(), step=step, error=str(exc))  # fmt: skip
        with contextlib.suppress(Exception), engine.begin() as conn:
            settlement.release(conn, day, token, clock(), error)
        return Outcome(Result.FAILED, error=error)
    _log_settled(day, done)
    return Outcome(Result.SETTLED, tuple(done.lines), done.posted)


def _log_settled(day: date, done: settlement.Transfer) -> None:
    net: dict[str, int] = {}
    for line in done.lines:
        net[line.currency] = net.get(line.currency, 0) + line.net
    what = "business day settled" if done.posted else "business day's tasks done again"
    log.info(what, day=day.isoformat(), billers=len(done.lines), net=net)


def close_missed(
    engine: Engine,
    home: Path,
    *,
    node: str,
    tasks: tuple[tuple[str, Task], ...] = TASKS,
    stopping: Callable[[], bool] = lambda: False,
    clock: Callable[[], datetime] = _now,
) -> dict[date, Result]:
    """Every closed day not settled to the end, oldest first (see the module doc); a
    day that cannot even be claimed (the database failing) is logged and left."""
    with engine.connect() as conn:
        days = settlement.unsettled_days(conn)
    results: dict[date, Result] = {}
    for day in days:
        if stopping():
            break
        try:
            results[day] = close_day(engine, day, home, node=node, tasks=tasks, clock=clock).result
        except Exception as exc:
            log.error("close of day not started", day=day.isoformat(), error=str(exc))
            results[day] = Result.FAILED
    return results
