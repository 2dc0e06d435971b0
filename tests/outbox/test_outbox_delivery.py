"""The delivery loop on a real database of each backend, driven by a clock: what it tells
the biller, when it tries again, what it parks, and how nodes, leases and restarts share
the rows."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import Engine
from twisted.internet.task import Clock

from routing.adapters.held import HeldDebtsAdapter
from routing.billers import InDoubt, Unavailable, UnknownAccount
from switch.config import OutboxSettings
from switch.delivery import DeliveryLoop, backoff
from switch.ledger import outbox
from tests.outbox.outbox_support import (
    BILLER,
    NOW,
    SETTINGS,
    FakeBiller,
    add,
    clock_at,
    payment,
    rows,
    sync_db,
)


def loop_on(
    engine: Engine, biller: FakeBiller, clock: Clock, settings: OutboxSettings = SETTINGS
) -> DeliveryLoop:
    """A delivery loop on ``engine`` and ``clock`` (jitter fixed at its middle)."""
    return DeliveryLoop(sync_db(engine), lambda code: biller, settings, clock, draw=lambda: 0.5)


def _states(engine: Engine) -> dict[tuple[str, str], str]:
    return {key: row.state for key, row in rows(engine).items()}


def test_delivers_each_action_as_the_biller_api_wants(engine: Engine) -> None:
    biller = FakeBiller(held={"P-2": "accepted", "P-3": "accepted"})
    add(
        engine,
        outbox.pay(BILLER, payment("P-1")),
        outbox.reverse(BILLER, "P-2"),
        outbox.settle(BILLER, "P-3"),
        outbox.settle(BILLER, "P-4"),
    )
    clock = clock_at()
    loop_on(engine, biller, clock).start()
    clock.advance(0)
    assert set(_states(engine).values()) == {"done"}
    assert biller.held == {"P-1": "accepted", "P-2": "reversed", "P-3": "reversed"}
    assert biller.count("pay", "P-1") == 1
    # A settle asks first; it reverses only what the biller holds as accepted.
    assert [c for c in biller.calls if c[1] == "P-3"] == [("status", "P-3"), ("reverse", "P-3")]
    assert [c for c in biller.calls if c[1] == "P-4"] == [("status", "P-4")]


def test_a_settle_of_a_payment_already_reversed_there_calls_no_reversal(engine: Engine) -> None:
    biller = FakeBiller(held={"P-1": "reversed"})
    add(engine, outbox.settle(BILLER, "P-1"))
    clock = clock_at()
    loop_on(engine, biller, clock).start()
    clock.advance(0)
    assert biller.calls == [("status", "P-1")]
    assert _states(engine) == {("settle", "P-1"): "done"}


def test_transient_failures_are_tried_again_after_growing_delays(engine: Engine) -> None:
    biller = FakeBiller(failures=deque([Unavailable("refused"), InDoubt("timeout")] * 2))
    add(engine, outbox.pay(BILLER, payment("P-1")))
    clock = clock_at()
    loop_on(engine, biller, clock).start()
    delays = []
    seen = 0
    while rows(engine)["pay", "P-1"].state == "pending":
        clock.advance(0.25)
        row = rows(engine)["pay", "P-1"]
        if row.attempts > seen and row.state == "pending":
            seen = row.attempts
            delays.append((row.next_at - _now(clock)).total_seconds())
        assert clock.seconds() - NOW.timestamp() < 120, "never delivered"
    # Base 2 s, doubling, the jitter drawn at its middle: 3/4 of 2, 4, 8, 16 s.
    assert delays == [1.5, 3.0, 6.0, 12.0]
    assert rows(engine)["pay", "P-1"].attempts == 5
    assert biller.held == {"P-1": "accepted"}


def test_backoff_grows_to_its_cap_and_never_shrinks() -> None:
    lows = [backoff(n, 2.0, 60.0, 0.0) for n in range(1, 12)]
    highs = [backoff(n, 2.0, 60.0, 1.0) for n in range(1, 12)]
    assert lows == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert highs == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0]
    assert all(high <= low for high, low in zip(highs, lows[1:], strict=False) if high < 30)


def test_a_refusal_parks_the_row_with_its_reason_and_is_not_tried_again(engine: Engine) -> None:
    biller = FakeBiller(failures=deque([UnknownAccount("no such account")]))
    add(engine, outbox.pay(BILLER, payment("P-1")), outbox.reverse(BILLER, "P-1"))
    clock = clock_at()
    loop_on(engine, biller, clock).start()
    clock.advance(0)
    clock.advance(SETTINGS.backoff_cap * 3)
    row = rows(engine)["pay", "P-1"]
    assert (row.state, row.last_error) == ("parked", "UnknownAccount (14): no such account")
    assert biller.count("pay", "P-1") == 1
    # The reversal waited for the advice; parked, it no longer holds the reversal back.
    assert _states(engine)["reverse", "P-1"] == "done"
    assert biller.held == {}


def test_a_row_of_a_biller_not_online_is_parked(engine: Engine) -> None:
    add(engine, outbox.reverse("UTIL01", "P-1"))
    clock = clock_at()
    held = HeldDebtsAdapter(lambda *_: None)  # type: ignore[arg-type,return-value]
    DeliveryLoop(sync_db(engine), lambda code: held, SETTINGS, clock).start()
    clock.advance(0)
    row = rows(engine)["reverse", "P-1"]
    assert (row.state, row.last_error) == ("parked", "NotOnline (05): UTIL01 is a held biller")


def test_no_more_than_max_in_flight_per_biller(engine: Engine) -> None:
    biller = FakeBiller(hold=True)
    add(engine, *(outbox.reverse(BILLER, f"P-{i}") for i in range(5)))
    add(engine, outbox.reverse("OTHER", "Q-1"))
    clock = clock_at()
    loop_on(engine, biller, clock).start()
    for _ in range(5):
        clock.advance(SETTINGS.poll)
        assert len([c for c in biller.calls if c[1].startswith("P-")]) == 2
    assert ("reverse", "Q-1") in biller.calls  # another biller is not held up
    while len(biller.calls) < 6:
        biller.release()
        clock.advance(SETTINGS.poll)
    biller.release()
    assert set(_states(engine).values()) == {"done"}
    assert len(biller.calls) == 6


def test_a_failing_biller_rests_instead_of_taking_a_call_per_row(engine: Engine) -> None:
    """Each row alone would be due again 1.5 s after its failure; the biller, having failed
    a batch in a row, is left alone longer (its own backoff by failures in a row)."""
    biller = FakeBiller(failures=deque([Unavailable("circuit open")] * 100))
    add(engine, *(outbox.reverse(BILLER, f"P-{i:02}") for i in range(30)))
    clock = clock_at()
    loop_on(engine, biller, clock).start()
    clock.advance(0)
    assert len(biller.calls) == SETTINGS.batch
    for _ in range(80):
        clock.advance(0.25)
    assert len(biller.calls) == SETTINGS.batch
    assert {r.state for r in rows(engine).values()} == {"pending"}


def test_a_row_claimed_by_a_dead_node_is_delivered_after_its_lease(engine: Engine) -> None:
    biller = FakeBiller()
    add(engine, outbox.pay(BILLER, payment("P-1")))
    with engine.begin() as conn:
        assert len(outbox.claim(conn, NOW, SETTINGS.lease, 10)) == 1  # then the node died
    clock = clock_at()
    loop_on(engine, biller, clock).start()
    clock.advance(SETTINGS.lease - 1)
    assert biller.calls == []
    clock.advance(2)
    assert biller.calls == [("pay", "P-1")]
    assert (rows(engine)["pay", "P-1"].state, rows(engine)["pay", "P-1"].attempts) == ("done", 2)


def test_rows_survive_a_restart(engine: Engine) -> None:
    """A node stops with deliveries unanswered and rows it had not started: a new loop on
    the same database delivers all of them; the biller holds each payment once."""
    biller = FakeBiller(hold=True)
    add(engine, *(outbox.pay(BILLER, payment(f"P-{i}")) for i in range(3)))
    clock = clock_at()
    first = loop_on(engine, biller, clock)
    first.start()
    clock.advance(0)
    assert len(biller.waiting) == 2  # the third waits its turn on this node
    stopped: list[object] = []
    first.stop(timeout=5).addBoth(stopped.append)
    clock.advance(4)
    assert stopped == []
    clock.advance(1)
    assert stopped == [None]
    biller.waiting.clear()  # the process is gone: those calls are never answered
    biller.hold = False
    second = loop_on(engine, biller, clock)
    second.start()
    clock.advance(0)
    assert _states(engine) == {
        ("pay", "P-0"): "pending",
        ("pay", "P-1"): "pending",
        ("pay", "P-2"): "done",  # handed back at the stop: delivered at once
    }
    clock.advance(SETTINGS.lease)
    assert set(_states(engine).values()) == {"done"}
    assert biller.held == {f"P-{i}": "accepted" for i in range(3)}


def test_a_stop_waits_for_deliveries_under_way(engine: Engine) -> None:
    biller = FakeBiller(hold=True)
    add(engine, outbox.reverse(BILLER, "P-1"))
    clock = clock_at()
    loop = loop_on(engine, biller, clock)
    loop.start()
    clock.advance(0)
    stopped: list[object] = []
    loop.stop(timeout=5).addBoth(stopped.append)
    assert stopped == []
    biller.release()
    assert stopped == [None]
    assert _states(engine) == {("reverse", "P-1"): "done"}
    add(engine, outbox.reverse(BILLER, "P-2"))
    clock.advance(10)
    assert ("reverse", "P-2") not in biller.calls  # stopped: no more claims


def test_two_nodes_on_one_database_never_deliver_a_row_at_once(engine: Engine) -> None:
    biller = FakeBiller(hold=True)
    add(engine, *(outbox.reverse("ABC"[i % 3], f"P-{i:02}") for i in range(24)))
    clock = clock_at()
    nodes = [loop_on(engine, biller, clock), loop_on(engine, biller, clock)]
    for node in nodes:
        node.start()
    while len(set(biller.calls)) < 24:
        clock.advance(SETTINGS.poll)
        under_way = biller.under_way()
        assert len(under_way) == len(set(under_way))
        assert all(n.in_flight() for n in nodes)  # both nodes work
        biller.release()
        assert clock.seconds() - NOW.timestamp() < SETTINGS.lease, "a lease passed"
    biller.release()
    assert set(_states(engine).values()) == {"done"}
    assert len(biller.calls) == 24  # each row delivered once


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_show_depth_and_age_and_counters_outcomes(engine: Engine) -> None:
    billers = {"GA": FakeBiller(failures=deque([UnknownAccount("gone")])), "GB": FakeBiller()}
    billers["GB"].hold = True
    add(engine, outbox.pay("GA", payment("P-1")))
    add(engine, outbox.reverse("GB", "P-2"), outbox.reverse("GB", "P-3"), now=NOW + timedelta(1))
    before = {
        outcome: _sample("billswitch_outbox_deliveries_total", biller=code, outcome=outcome) or 0
        for code, outcome in (("GA", "parked"), ("GB", "done"))
    }
    clock = clock_at(NOW + timedelta(days=1, seconds=42))
    loop = DeliveryLoop(sync_db(engine), billers.__getitem__, SETTINGS, clock, lambda: 0.5)
    loop.start()
    clock.advance(0)
    loop.refresh_gauges()
    assert _sample("billswitch_outbox_rows", biller="GA", state="parked") == 1
    assert _sample("billswitch_outbox_rows", biller="GB", state="pending") == 2
    assert _sample("billswitch_outbox_oldest_pending_seconds", biller="GB") == 42
    assert _sample("billswitch_outbox_oldest_pending_seconds", biller="GA") is None
    billers["GB"].release()
    loop.refresh_gauges()
    assert _sample("billswitch_outbox_rows", biller="GB", state="pending") is None
    assert _sample("billswitch_outbox_oldest_pending_seconds", biller="GB") is None
    assert _sample("billswitch_outbox_rows", biller="GA", state="parked") == 1
    after = {
        outcome: _sample("billswitch_outbox_deliveries_total", biller=code, outcome=outcome)
        for code, outcome in (("GA", "parked"), ("GB", "done"))
    }
    assert after == {"parked": before["parked"] + 1, "done": before["done"] + 2}


def _now(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), UTC)
