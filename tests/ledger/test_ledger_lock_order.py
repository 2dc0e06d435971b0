"""Two writers whose batches touch each other's debts in opposite orders must not deadlock.

Batch A pays account X and reverses a payment of Y; batch B pays Y and
reverses a payment of X. Locking as the stages go, A would hold X's debts and
wait for Y's while B holds Y's and waits for X's: PostgreSQL would fail one
after ``deadlock_timeout``. The interleaving is forced: A stops right after
its first lock on debts until B is waiting for a lock (or done).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from switch.ledger.postings import Recorded, record_batch
from tests.ledger.ledger_support import (
    NOW,
    WAIT,
    assert_invariants,
    billers,
    payment,
    record_one,
    reversal,
)


def test_opposite_batches_do_not_deadlock(ledger: Engine, db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's writer holds the database lock from the start: no row locks")
    util = billers(ledger)["UTIL01"]
    paid_x, paid_y = payment(util, "1000002", 1000), payment(util, "1000001", 1000)
    record_one(ledger, paid_x)
    record_one(ledger, paid_y)
    batches = {
        "A": [payment(util, "1000002", 500), reversal(paid_y)],
        "B": [payment(util, "1000001", 500), reversal(paid_x)],
    }
    a_locked, release = threading.Event(), threading.Event()
    pids: dict[str, int] = {}
    outcomes: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            with ledger.begin() as conn:
                pids[name] = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                if name == "A":
                    _pause_after_first_debt_lock(conn, a_locked, release)
                outcomes[name] = record_batch(conn, batches[name], NOW, look_up=False)
        except Exception as exc:  # reported by the assertions below
            outcomes[name] = exc

    thread_a = threading.Thread(target=run, args=("A",), daemon=True)
    thread_a.start()
    assert a_locked.wait(WAIT)
    thread_b = threading.Thread(target=run, args=("B",), daemon=True)
    thread_b.start()
    _until_waiting_for_a_lock_or_done(ledger, pids, thread_b)
    release.set()
    thread_a.join(WAIT)
    thread_b.join(WAIT)
    for name in "AB":
        recorded = outcomes[name]
        assert isinstance(recorded, list), f"batch {name}: {recorded!r}"
        assert [r.code for r in recorded if isinstance(r, Recorded)] == ["00", "00"]
    with ledger.connect() as conn:
        assert_invariants(conn)


def _pause_after_first_debt_lock(
    conn: Any, locked: threading.Event, release: threading.Event
) -> None:
    @event.listens_for(conn, "after_cursor_execute")
    def after(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if not locked.is_set() and "FROM debts" in statement and "FOR UPDATE" in statement:
            locked.set()
            release.wait(WAIT)


def _until_waiting_for_a_lock_or_done(
    ledger: Engine, pids: dict[str, int], thread: threading.Thread
) -> None:
    """A bounded wait for B to block on a row lock (or to finish without needing one)."""
    deadline = time.monotonic() + WAIT
    query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    while time.monotonic() < deadline and thread.is_alive():
        if "B" in pids:
            with ledger.connect() as conn:
                if conn.execute(query, {"pid": pids["B"]}).scalar() == "Lock":
                    return
        time.sleep(0.02)
