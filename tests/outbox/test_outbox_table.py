"""The outbox table and its claim, on both backends: enqueuing in the caller's transaction,
duplicates harmless, claims exclusive (SKIP LOCKED on PostgreSQL), stale attempts ignored."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError

from switch.ledger import outbox
from switch.ledger import schema as s
from switch.ledger.database import make_engine
from tests.outbox.outbox_support import BILLER, NOW, add, payment, rows


def test_enqueue_rolls_back_with_its_transaction(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert outbox.enqueue(conn, [outbox.pay(BILLER, payment("P-1"))], NOW) == 1
        raise RuntimeError("the posting failed")
    assert rows(engine) == {}


def test_enqueue_commits_with_its_transaction_and_twice_adds_nothing(engine: Engine) -> None:
    assert add(engine, outbox.pay(BILLER, payment("P-1")), outbox.reverse(BILLER, "P-1")) == 2
    assert add(engine, outbox.pay(BILLER, payment("P-1", amount=1))) == 0
    stored = rows(engine)
    assert set(stored) == {("pay", "P-1"), ("reverse", "P-1")}
    assert stored["pay", "P-1"].state == "pending"
    assert stored["pay", "P-1"].attempts == 0


def test_a_pay_body_rebuilds_its_payment_request(engine: Engine) -> None:
    add(engine, outbox.pay(BILLER, payment("P-1")))
    with engine.begin() as conn:
        (row,) = outbox.claim(conn, NOW, 30, 10)
    assert outbox.payment_request(row.body) == payment("P-1")


def test_claim_takes_due_rows_once_until_the_lease_passes(engine: Engine) -> None:
    add(engine, outbox.reverse(BILLER, "P-1"), outbox.settle(BILLER, "P-2", delay=5))
    with engine.begin() as conn:
        first = outbox.claim(conn, NOW, 30, 10)
        again = outbox.claim(conn, NOW + timedelta(seconds=29), 30, 10)
    assert [(r.payment_id, r.attempts) for r in first] == [("P-1", 1)]
    assert [r.payment_id for r in again] == ["P-2"]  # due after its delay; P-1 leased
    with engine.begin() as conn:
        after = outbox.claim(conn, NOW + timedelta(seconds=31), 30, 10)
    assert [(r.payment_id, r.attempts) for r in after] == [("P-1", 2)]


def test_a_stale_attempt_changes_nothing(engine: Engine) -> None:
    add(engine, outbox.reverse(BILLER, "P-1"))
    with engine.begin() as conn:
        (old,) = outbox.claim(conn, NOW, 30, 10)
        (new,) = outbox.claim(conn, NOW + timedelta(seconds=31), 30, 10)
        assert not outbox.mark_done(conn, old, NOW + timedelta(seconds=32))
        assert outbox.park(conn, new, NOW + timedelta(seconds=33), "Refused (05): no")
        assert not outbox.reschedule(conn, new, NOW, NOW, "late")
    row = rows(engine)["reverse", "P-1"]
    assert (row.state, row.last_error) == ("parked", "Refused (05): no")


def test_a_reversal_waits_for_its_advice(engine: Engine) -> None:
    add(engine, outbox.pay(BILLER, payment("P-1")), outbox.reverse(BILLER, "P-1"))
    with engine.begin() as conn:
        (pay,) = outbox.claim(conn, NOW, 30, 10)
        assert outbox.claim(conn, NOW, 30, 10) == []
        outbox.mark_done(conn, pay, NOW)
        assert [r.action for r in outbox.claim(conn, NOW, 30, 10)] == ["reverse"]


def test_claim_leaves_out_the_billers_asked(engine: Engine) -> None:
    add(engine, outbox.reverse("A", "P-1"), outbox.reverse("B", "P-2"))
    with engine.begin() as conn:
        assert [r.biller_code for r in outbox.claim(conn, NOW, 30, 10, {"A"})] == ["B"]


def test_depth_counts_rows_not_done_by_biller_and_state(engine: Engine) -> None:
    add(engine, outbox.reverse("A", "P-1"), outbox.reverse("A", "P-2"))
    add(engine, outbox.reverse("B", "P-3"), now=NOW + timedelta(seconds=10))
    with engine.begin() as conn:
        rows_ = outbox.claim(conn, NOW + timedelta(seconds=10), 30, 10, {"B"})
        outbox.park(conn, rows_[0], NOW, "refused")
        outbox.mark_done(conn, rows_[1], NOW)
        got = {(d.biller_code, d.state): (d.rows, d.oldest) for d in outbox.depth(conn)}
    assert got == {
        ("A", "parked"): (1, NOW),
        ("B", "pending"): (1, NOW + timedelta(seconds=10)),
    }


@pytest.mark.postgres
def test_postgres_claims_skip_rows_another_node_is_claiming(engine: Engine, db_url: str) -> None:
    """A claim in progress (its transaction open) holds its rows; another node's claim takes
    other rows at once instead of waiting for them (a lock wait here would fail in 1 s)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's claims are serialised by its write lock: no SKIP LOCKED to test")
    add(engine, *(outbox.reverse(BILLER, f"P-{i}") for i in range(4)))
    other = make_engine(db_url, write=False)
    try:
        with engine.begin() as a:
            mine = outbox.claim(a, NOW, 30, 2)
            with other.begin() as b:
                b.execute(text("SET LOCAL lock_timeout = '1s'"))
                theirs = outbox.claim(b, NOW, 30, 10)
        assert len(mine) == 2
        assert {r.id for r in mine}.isdisjoint(r.id for r in theirs)
        assert len(theirs) == 2
    finally:
        other.dispose()


def test_nodes_claiming_at_once_never_take_a_row_twice(engine: Engine, db_url: str) -> None:
    """Four threads, each its own engine (a node), claim batches until none is left."""
    add(engine, *(outbox.reverse(BILLER, f"P-{i:03}") for i in range(200)))
    taken: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def node(mine: list[int]) -> None:
        own = make_engine(db_url, write=False)
        try:
            while True:
                with own.begin() as conn:
                    batch = outbox.claim(conn, NOW, 30, 7)
                if not batch:
                    return
                mine.extend(r.id for r in batch)
        except OperationalError as exc:  # SQLite busy beyond its timeout: a failed test
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=node, args=(t,)) for t in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    every = [i for ids in taken for i in ids]
    assert len(every) == len(set(every)) == 200
    with engine.connect() as conn:
        assert conn.execute(select(func.max(s.outbox.c.attempts))).scalar_one() == 1
