"""Several switch nodes on one database: each with its own engine and its own ledger writer.

On PostgreSQL the nodes are two engines (two connection pools) on one schema; on
SQLite two engines on one file. Many threads submit at once; the database's
unique request key must let exactly one of them move the money.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from switch.ledger import schema as s
from switch.ledger.postings import Order, PaymentOrder, Recorded, record
from tests.ledger.ledger_support import (
    NOW,
    WAIT,
    Node,
    Result,
    assert_invariants,
    billers,
    count,
    debt_open,
    payment,
    record_one,
    results,
)

MakeNode = Callable[..., Node]
THREADS_PER_NODE = 6


def _race(nodes: list[Node], work: list[list[Order]]) -> list[list[Result]]:
    """Thread ``t`` submits ``work[t]`` to ``nodes[t % len(nodes)]``; all threads start together."""
    for n in nodes:
        n.start()
    barrier = threading.Barrier(len(work))
    submitted: list[list[Result]] = [[] for _ in work]
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            barrier.wait(WAIT)
            for order in work[t]:
                submitted[t].append(nodes[t % len(nodes)].submit(order))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(len(work))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(WAIT)
    assert not any(th.is_alive() for th in threads), "a submitting thread hung"
    assert errors == []
    return submitted


def test_same_payment_on_two_nodes_is_recorded_once(ledger: Engine, node: MakeNode) -> None:
    util = billers(ledger)["UTIL01"]
    template = payment(util, "1000002", 123456)

    def same() -> Order:  # each node decodes its own copy of the retransmitted request
        return payment(util, "1000002", 123456, stan=template.key.stan)

    nodes = [node(), node()]
    work = [[same() for _ in range(10)] for _ in range(2 * THREADS_PER_NODE)]
    answers = [a for per_thread in _race(nodes, work) for a in results(per_thread)]

    assert len(answers) == 2 * THREADS_PER_NODE * 10
    assert all(isinstance(a, Recorded) for a in answers), [
        a for a in answers if not isinstance(a, Recorded)
    ][:3]
    assert {a.code for a in answers} == {"00"}
    assert all(a.response == answers[0].response for a in answers)
    assert [a.replay for a in answers].count(False) == 1
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert count(conn, s.requests) == 1
        assert debt_open(conn, "UTIL01", "1000002", "202610") == 500000 - 123456
        assert_invariants(conn)


def test_many_payments_repeated_on_two_nodes_each_recorded_once(
    ledger: Engine, node: MakeNode
) -> None:
    """Several keys, each sent many times to both nodes in a random order."""
    util = billers(ledger)["UTIL01"]
    accounts = ["1000002", "1000001", "1000050"]  # 1000050 owes nothing: 13
    templates = [payment(util, accounts[i % 3], 1000 + i) for i in range(9)]

    def copy(t: Order) -> Order:
        return payment(util, t.account, t.amount, stan=t.key.stan)  # type: ignore[attr-defined]

    rng = random.Random(8583)
    work = []
    for _ in range(2 * THREADS_PER_NODE):
        mine = [copy(t) for t in templates for _ in range(3)]
        rng.shuffle(mine)
        work.append(mine)
    nodes = [node(), node()]
    submitted = _race(nodes, work)

    by_stan: dict[str, list[Recorded]] = {}
    for per_thread, orders in zip(submitted, work, strict=True):
        for result, order in zip(results(per_thread), orders, strict=True):
            assert isinstance(result, Recorded), result
            by_stan.setdefault(order.key.stan, []).append(result)
    for stan, answers in by_stan.items():
        assert all(a.response == answers[0].response for a in answers), stan
        assert [a.replay for a in answers].count(False) == 1, stan
    with ledger.connect() as conn:
        approved = [t for t in templates if t.account != "1000050"]
        assert count(conn, s.payments) == len(approved)
        assert count(conn, s.requests) == len(templates)
        assert_invariants(conn)


def test_distinct_payments_racing_for_one_debt_never_overdraw_it(
    ledger: Engine, node: MakeNode
) -> None:
    """40 payments of 1000 against 12345 due, no overpayment: exactly 12 pass."""
    util = billers(ledger)["UTIL01"]
    work = [[payment(util, "1000001", 1000) for _ in range(4)] for _ in range(10)]
    nodes = [node(), node()]
    answers = [a for per_thread in _race(nodes, work) for a in results(per_thread)]
    assert all(isinstance(a, Recorded) for a in answers), answers
    codes = sorted(a.code for a in answers)
    assert codes == ["00"] * 12 + ["13"] * 28
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 345
        assert sum(conn.execute(select(s.payments.c.amount)).scalars()) == 12000
        assert_invariants(conn)


def test_fallback_that_meets_another_nodes_commit_replays_it(
    ledger: Engine, node: MakeNode, db_url: str
) -> None:
    """Node A commits a key between node B's look-up of that key and B's insert of it.

    B's batch fails on one key that A recorded (so B retries order by order), and while
    B retries the next order, A commits that one too. B must answer with A's stored
    response, as for any retransmission, not 96 for a request that is in the ledger.
    The interleaving is forced with engine events, so no timing is involved.
    """
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite writers hold the database lock from look-up to commit: no window")
    first = payment(None, "A1", 500, advice=True)  # advices to suspense lock no debt rows
    second = payment(None, "A2", 700, advice=True)

    def copy(order: PaymentOrder) -> PaymentOrder:
        return payment(None, order.account, order.amount, stan=order.key.stan, advice=True)

    node_b = node()
    inserts: list[str] = []
    other: dict[str, Any] = {}
    answers_a: dict[str, Recorded] = {}

    @event.listens_for(node_b.engine, "before_cursor_execute")
    def _before(_conn, _cursor, statement, parameters, *_args) -> None:  # type: ignore[no-untyped-def]
        if "INSERT INTO requests" in statement:  # on PostgreSQL, in the stage's WITH
            inserts.append(statement)
            if len(inserts) == 1:  # B's batch is about to claim both keys: A records the first
                answers_a["first"] = record_one(ledger, copy(first))
            elif "trans" in other:  # B's retry of the second order is claiming it: A commits
                other.pop("trans").commit()
                other.pop("conn").close()
        elif (
            "failed" in other
            and "started" not in other
            and statement.startswith("SELECT")
            and "requests" in statement
            and second.key.stan in str(parameters)
        ):  # B retries the second order alone and looks its key up: A starts recording it
            other["started"] = True
            conn = ledger.connect()
            other["conn"], other["trans"] = conn, conn.begin()
            answers_a["second"] = record(conn, copy(second), NOW)

    @event.listens_for(node_b.engine, "rollback")
    def _rollback(_conn) -> None:  # type: ignore[no-untyped-def]
        other["failed"] = True  # B's batch failed (ConcurrentRequest): it retries one by one

    pending = [node_b.submit(first), node_b.submit(second)]
    node_b.start()
    got_first, got_second = results(pending)
    assert isinstance(got_first, Recorded) and got_first.replay
    assert got_first.response == answers_a["first"].response
    assert isinstance(got_second, Recorded), got_second
    assert got_second.replay and got_second.response == answers_a["second"].response
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 2
        assert_invariants(conn)
