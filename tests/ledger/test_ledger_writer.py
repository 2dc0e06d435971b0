"""The ledger writer: group commit, fallback order by order, failures, load shedding, stop."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, event, select
from sqlalchemy.engine import make_url

from switch.errors import Overloaded, SystemFailure
from switch.ledger import schema as s
from switch.ledger.database import make_engine
from switch.ledger.postings import Outcome, PaymentOrder, Recorded
from tests.ledger.ledger_support import (
    Node,
    Result,
    assert_invariants,
    billers,
    count,
    debt_open,
    payment,
    request_row,
    results,
    reversal,
    snapshot,
)

MakeNode = Callable[..., Node]


def _commits(engine: Engine) -> list[int]:
    """A counter of the transactions ``engine`` commits from now on."""
    seen = [0]

    @event.listens_for(engine, "commit")
    def _on_commit(_conn) -> None:  # type: ignore[no-untyped-def]
        seen[0] += 1

    return seen


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _small_payments(ledger: Engine, n: int) -> list[PaymentOrder]:
    """``n`` approvable payments: 1 each against 1000002's 750000 of debts."""
    util = billers(ledger)["UTIL01"]
    return [payment(util, "1000002", 1) for _ in range(n)]


def test_group_commit_writes_all_queued_orders_in_few_transactions(
    ledger: Engine, node: MakeNode
) -> None:
    writer = node(ledger)
    commits = _commits(ledger)
    size_sum = _sample("billswitch_ledger_batch_size_sum")
    orders = _small_payments(ledger, 200)
    pending = [writer.submit(o) for o in orders]
    assert writer.writer.depth() == 200
    writer.start()
    answers = results(pending)
    assert all(isinstance(a, Recorded) and a.code == "00" for a in answers), answers[:3]
    assert len({a.response["payment_id"] for a in answers}) == 200
    assert 1 <= commits[0] <= 3  # group commit: one transaction carried (nearly) all of them
    assert _sample("billswitch_ledger_batch_size_sum") - size_sum == 200
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 200
        assert debt_open(conn, "UTIL01", "1000002", "202610") == 500000 - 200
        assert_invariants(conn)


def test_batches_are_bounded_by_batch_max(ledger: Engine, node: MakeNode) -> None:
    writer = node(ledger, batch_max=50)
    commits = _commits(ledger)
    pending = [writer.submit(o) for o in _small_payments(ledger, 200)]
    writer.start()
    assert [a.code for a in results(pending)] == ["00"] * 200
    assert commits[0] >= 4
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 200
        assert_invariants(conn)


def test_responses_leave_only_after_commit(ledger: Engine, node: MakeNode) -> None:
    """When a Deferred fires, another connection already sees the committed payment."""
    seen: list[int] = []
    writer = node(ledger)

    def look(value):  # type: ignore[no-untyped-def]
        with ledger.connect() as conn:
            seen.append(count(conn, s.payments))
        return value

    result = Result()
    writer.writer.submit(_small_payments(ledger, 1)[0]).addCallback(look).addBoth(result.set)
    writer.start()
    assert result.get().code == "00"
    assert seen == [1]


def _exploding(order: PaymentOrder) -> PaymentOrder:
    """The same payment, but building its response fails: after its rows are written."""

    def respond(outcome: Outcome) -> dict[str, str]:
        raise RuntimeError("cannot build the response")

    order.respond = respond
    return order


def test_failing_order_falls_back_to_order_by_order(ledger: Engine, node: MakeNode) -> None:
    writer = node(ledger)
    orders = _small_payments(ledger, 10)
    bad = _exploding(orders[4])
    pending = [writer.submit(o) for o in orders]
    writer.start()
    answers = results(pending)
    failed = answers[4]
    assert isinstance(failed, SystemFailure) and failed.code == "96"
    good = answers[:4] + answers[5:]
    assert all(isinstance(a, Recorded) and a.code == "00" for a in good), good
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 9
        assert request_row(conn, bad.key) is None  # nothing of the failed order is kept
        assert debt_open(conn, "UTIL01", "1000002", "202610") == 500000 - 9
        assert_invariants(conn)


def _unreachable(db_url: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'ledger.db'}"
    return make_url(db_url).set(port=1).render_as_string(hide_password=False)


def test_database_unavailable_fails_every_order_with_96(
    ledger: Engine, node: MakeNode, db_url: str, tmp_path
) -> None:
    with ledger.connect() as conn:
        before = snapshot(conn)
    writer = node(make_engine(_unreachable(db_url, tmp_path)), deadline=1.0)
    pending = [writer.submit(o) for o in _small_payments(ledger, 20)]
    writer.start()
    answers = results(pending)
    assert all(isinstance(a, SystemFailure) and a.code == "96" for a in answers), answers[:3]
    writer.stop()
    with ledger.connect() as conn:
        assert snapshot(conn) == before
        assert_invariants(conn)
    assert not (tmp_path / "no").exists()


def test_a_full_queue_sheds_with_91(ledger: Engine, node: MakeNode) -> None:
    writer = node(ledger, queue_max=5)
    shed = _sample("billswitch_shed_total")
    orders = _small_payments(ledger, 7)
    pending = [writer.submit(o) for o in orders]
    for refused in pending[5:]:
        assert refused.done()
        answer = refused.get()
        assert isinstance(answer, Overloaded) and answer.code == "91"
    assert _sample("billswitch_shed_total") - shed == 2
    writer.start()
    writer.stop()
    assert [a.code for a in results(pending[:5])] == ["00"] * 5
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 5
        assert all(request_row(conn, o.key) is None for o in orders[5:])
        assert_invariants(conn)


def test_stop_drains_everything_queued(ledger: Engine, node: MakeNode) -> None:
    writer = node(ledger, batch_max=7)
    pending = [writer.submit(o) for o in _small_payments(ledger, 60)]
    writer.start()
    writer.stop()
    assert all(p.done() for p in pending)
    assert [a.code for a in results(pending)] == ["00"] * 60
    late = writer.submit(_small_payments(ledger, 1)[0]).get()
    assert isinstance(late, SystemFailure) and late.code == "96"
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 60
        assert_invariants(conn)


def test_duplicates_within_one_batch(ledger: Engine, node: MakeNode) -> None:
    util = billers(ledger)["UTIL01"]
    order = payment(util, "1000001", 12345)
    again = payment(util, "1000001", 12345, stan=order.key.stan)
    other = payment(util, "1000001", 1, stan=order.key.stan)  # same key, other content
    writer = node(ledger)
    pending = [writer.submit(o) for o in (order, again, other)]
    writer.start()
    first, second, third = results(pending)
    assert first.code == "00" and not first.replay
    assert second.replay and second.response == first.response
    assert third.code == "94"
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert json.loads(request_row(conn, order.key).response) == first.response
        assert_invariants(conn)


def test_payments_of_one_account_in_one_batch_see_each_other(
    ledger: Engine, node: MakeNode
) -> None:
    util = billers(ledger)["UTIL01"]
    orders = [payment(util, "1000001", 5000) for _ in range(4)]  # 12345 due: two fit
    writer = node(ledger)
    pending = [writer.submit(o) for o in orders]
    writer.start()
    assert [a.code for a in results(pending)] == ["00", "00", "13", "13"]
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 2345
        assert_invariants(conn)


@pytest.mark.parametrize("advice", [False, True])
def test_payment_and_its_reversal_in_one_batch(
    ledger: Engine, node: MakeNode, advice: bool
) -> None:
    """Under load a terminal's 0400/0420 can join the queue behind its own 0200."""
    util = billers(ledger)["UTIL01"]
    order = payment(util, "1000001", 12345)
    writer = node(ledger)
    pending = [writer.submit(o) for o in (order, reversal(order, advice=advice))]
    writer.start()
    paid, reversed_ = results(pending)
    assert paid.code == "00" and reversed_.code == "00"
    assert reversed_.response.get("payment_id") == paid.response["payment_id"]
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 12345
        assert conn.execute(select(s.payments.c.reversed_amount)).scalar_one() == 12345
        assert_invariants(conn)


def test_batch_decides_in_arrival_order(ledger: Engine, node: MakeNode) -> None:
    """A payment, its reversal, and the payer paying again, all queued together."""
    util = billers(ledger)["UTIL01"]
    first = payment(util, "1000001", 12345)
    again = payment(util, "1000001", 12345)
    writer = node(ledger)
    pending = [writer.submit(o) for o in (first, reversal(first), again)]
    writer.start()
    assert [a.code for a in results(pending)] == ["00", "00", "00"]
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 0
        assert_invariants(conn)
