"""Business day at commit, not at receipt (issue 8 item 9a).

A payment received before the cut-over whose batch commits after the day was closed
and reconciled (0500) must land in the next day: a reconciled day's totals never
change. The writer runs on an injected clock; closing a day waits for the batches
still writing into it (a row lock on ``business_days``).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from switch.business_day import business_day, roll_over
from switch.ledger import schema as s
from switch.ledger.database import make_engine
from switch.ledger.days import closed_day_totals, open_day
from switch.ledger.postings import record_batch
from switch.ledger.queries import acquirer_totals
from tests.ledger.ledger_support import (
    ACQ,
    WAIT,
    assert_invariants,
    billers,
    payment,
)

D = date(2026, 11, 22)
CUT = time(23, 0)
BEFORE_CUT = datetime(2026, 11, 22, 22, 59, 59, tzinfo=UTC)
AFTER_CUT = datetime(2026, 11, 22, 23, 0, 1, tzinfo=UTC)


class Clock:
    """The writer's clock, set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _day_rule(now: datetime) -> date:
    return business_day(now, CUT, "UTC")


def _payment_days(ledger: Engine) -> list[tuple[int, date]]:
    p = s.payments.c
    with ledger.connect() as conn:
        return [tuple(r) for r in conn.execute(select(p.amount, p.business_day).order_by(p.id))]  # type: ignore[misc]


def _journal_days(ledger: Engine) -> set[date]:
    with ledger.connect() as conn:
        return set(conn.execute(select(s.journal.c.business_day)).scalars())


def _reconcile(ledger: Engine, day: date, now: datetime) -> Any:
    """A 0500 for ``day`` as the reconciliation step runs it: one transaction of the
    read pool's engine (on SQLite a plain, deferred BEGIN)."""
    reads = make_engine(ledger.url.render_as_string(hide_password=False), write=False)
    try:
        with reads.begin() as conn:
            return closed_day_totals(conn, ACQ, day, _day_rule(now), now)
    finally:
        reads.dispose()


def test_a_payment_received_before_the_cutover_and_committed_after_lands_in_the_next_day(
    ledger: Engine, node: Any
) -> None:
    with ledger.begin() as conn:
        roll_over(conn, D, BEFORE_CUT - timedelta(hours=12))
    util = billers(ledger)["UTIL01"]
    clock = Clock(BEFORE_CUT)
    writer = node(business_day=_day_rule, clock=clock)
    writer.start()
    assert writer.submit(payment(util, "1000002", 100, day=D)).get().code == "00"
    # The cut-over closes D; the acquirer reconciles it.
    with ledger.begin() as conn:
        assert roll_over(conn, D + timedelta(days=1), AFTER_CUT) == [D]
    assert _reconcile(ledger, D, AFTER_CUT).payments == 1
    # A payment received at 22:59:59 (its order says D) whose batch commits after.
    clock.now = AFTER_CUT
    assert writer.submit(payment(util, "1000002", 200, day=D)).get().code == "00"
    assert _payment_days(ledger) == [(100, D), (200, D + timedelta(days=1))]
    assert _journal_days(ledger) == {D, D + timedelta(days=1)}
    assert _reconcile(ledger, D, AFTER_CUT).payment_amount == 100  # unchanged
    with ledger.connect() as conn:
        assert acquirer_totals(conn, ACQ, D + timedelta(days=1)).payment_amount == 200
        assert_invariants(conn)


def test_a_slow_clock_does_not_write_into_a_day_already_closed(ledger: Engine, node: Any) -> None:
    """Another node's cut-over closed D; this node's clock still says D."""
    with ledger.begin() as conn:
        roll_over(conn, D, BEFORE_CUT - timedelta(hours=12))
        roll_over(conn, D + timedelta(days=1), AFTER_CUT)
    writer = node(business_day=_day_rule, clock=Clock(BEFORE_CUT))
    writer.start()
    util = billers(ledger)["UTIL01"]
    assert writer.submit(payment(util, "1000002", 300, day=D)).get().code == "00"
    assert _payment_days(ledger) == [(300, D + timedelta(days=1))]


def test_the_first_batch_of_a_day_nobody_opened_yet_opens_it(ledger: Engine, node: Any) -> None:
    writer = node(business_day=_day_rule, clock=Clock(AFTER_CUT))
    writer.start()
    util = billers(ledger)["UTIL01"]
    assert writer.submit(payment(util, "1000002", 400, day=D)).get().code == "00"
    assert _payment_days(ledger) == [(400, D + timedelta(days=1))]
    with ledger.connect() as conn:
        states = dict(conn.execute(select(s.business_days.c.day, s.business_days.c.state)).all())
    assert states == {D + timedelta(days=1): "open"}


def _pid(conn: Any) -> int:
    return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _wait_until_blocked_by(ledger: Engine, pid: int, what: str) -> None:
    """PostgreSQL: wait (bounded) until some backend waits for a lock ``pid`` holds."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deadline = datetime.now(UTC) + timedelta(seconds=WAIT)
    with ledger.connect() as conn:
        while not conn.execute(query, {"pid": pid}).scalar():
            assert datetime.now(UTC) < deadline, what
            conn.rollback()


def test_a_0500_waits_for_the_batch_writing_into_its_day(ledger: Engine) -> None:
    """The cut-over has not closed D yet when the 0500 for D arrives (this node's timer
    is late) while a batch with a clock before the cut-over is writing into D: the 0500
    closes D, waiting for that batch, and counts it; no batch writes into D after."""
    with ledger.begin() as conn:
        roll_over(conn, D, BEFORE_CUT - timedelta(hours=12))
    util = billers(ledger)["UTIL01"]
    answers: list[Any] = []
    with ledger.begin() as batch:  # a writer's transaction, caught before its commit
        assert open_day(batch, _day_rule(BEFORE_CUT)) == D
        assert (
            record_batch(batch, [payment(util, "1000002", 500, day=D)], BEFORE_CUT)[0].code == "00"
        )
        reconcile = threading.Thread(
            target=lambda: answers.append(_reconcile(ledger, D, AFTER_CUT)), daemon=True
        )
        reconcile.start()
        if ledger.dialect.name == "postgresql":  # SQLite: its writer lock serialises anyway
            _wait_until_blocked_by(ledger, _pid(batch), "the 0500 did not wait for the batch")
            assert not answers
    reconcile.join(WAIT)
    assert answers and answers[0].payment_amount == 500
    with ledger.begin() as late:  # a batch whose clock still says D
        assert open_day(late, _day_rule(BEFORE_CUT)) == D + timedelta(days=1)


@pytest.mark.parametrize("closed_by", ["roll_over", "0500"])
def test_a_batch_waits_for_the_day_being_closed(ledger: Engine, closed_by: str) -> None:
    """The other order: the day is being closed when a batch with a clock before the
    cut-over starts; it waits, then writes into the next day."""
    with ledger.begin() as conn:
        roll_over(conn, D, BEFORE_CUT - timedelta(hours=12))
    found: list[date] = []
    with ledger.begin() as closing:
        if closed_by == "roll_over":
            roll_over(closing, D + timedelta(days=1), AFTER_CUT)
        else:
            closed_day_totals(closing, ACQ, D, D + timedelta(days=1), AFTER_CUT)

        def batch() -> None:
            with ledger.begin() as conn:
                found.append(open_day(conn, D))

        writer = threading.Thread(target=batch, daemon=True)
        writer.start()
        if ledger.dialect.name == "postgresql":
            _wait_until_blocked_by(ledger, _pid(closing), "the batch did not wait for the close")
    writer.join(WAIT)
    assert found == [D + timedelta(days=1)]
