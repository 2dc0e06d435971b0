"""One financial transaction, one identity (spec section 5, issue 8 items 1, 2 and 4).

A reversal that overtakes its original leaves a tombstone and the original is then
declined; an advice of an approved payment is the same transaction; a reversal must
name its original's amount and currency. Checked through ``record_batch`` directly,
through a writer (whose first try of a batch looks nothing up), and with two nodes
racing on one identity.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from switch.ledger import schema as s
from switch.ledger.postings import ConcurrentRequest, Recorded, RequestKey, record_batch
from tests.ledger.ledger_support import (
    NOW,
    Node,
    assert_invariants,
    billers,
    count,
    debt_open,
    journal_rows,
    payment,
    record_one,
    request_row,
    reversal,
    snapshot,
)

UTIL = "UTIL01"


def _util(ledger: Engine):  # type: ignore[no-untyped-def]
    return billers(ledger)[UTIL]


def _state(ledger: Engine, key: RequestKey) -> tuple[str, int | None] | None:
    t = s.transactions.c
    with ledger.connect() as conn:
        row = conn.execute(
            select(t.state, t.payment_id).where(
                t.acquirer_id == key.acquirer_id,
                t.terminal_id == key.terminal_id,
                t.stan == key.stan,
                t.transmitted == key.transmitted,
            )
        ).one_or_none()
    return None if row is None else (row.state, row.payment_id)


def _money(ledger: Engine) -> dict[str, Any]:
    with ledger.connect() as conn:
        snap = snapshot(conn)
    del snap["requests"]
    return snap


def _batch(ledger: Engine, orders: list, look_up: bool = True) -> list[Recorded]:  # type: ignore[type-arg]
    with ledger.begin() as conn:
        return record_batch(conn, orders, NOW, look_up=look_up)


# ---------------------------------------------------------------- item 1: reversed first


@pytest.mark.parametrize(("advice", "code"), [(True, "00"), (False, "25")])
@pytest.mark.parametrize("original_advice", [False, True])
def test_original_after_its_reversal_is_declined_and_moves_nothing(
    ledger: Engine, advice: bool, code: str, original_advice: bool
) -> None:
    original = payment(_util(ledger), "1000001", 12345, advice=original_advice)
    assert record_one(ledger, reversal(original, advice=advice)).code == code
    assert _state(ledger, original.key) == ("reversed_first", None)
    before = _money(ledger)
    late = record_one(ledger, original)
    assert late.code == "05" and late.response == {"39": "05"}
    assert _money(ledger) == before  # no payment, journal row, allocation, debt change
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 0
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345
        assert request_row(conn, original.key).response_code == "05"  # recorded: repeats agree
        assert_invariants(conn)
    assert record_one(ledger, payment(_util(ledger), "1000001", 1, stan="000000")).code == "00"


def test_first_try_without_look_up_meets_the_tombstone_and_is_retried(ledger: Engine) -> None:
    """The writer's first try of a batch looks nothing up: the tombstone's key stops it."""
    original = payment(_util(ledger), "1000001", 12345)
    record_one(ledger, reversal(original, advice=True))
    other = payment(_util(ledger), "1000002", 1000)
    with pytest.raises(ConcurrentRequest):
        _batch(ledger, [other, original], look_up=False)
    assert _money(ledger)["payments"] == 0  # rolled back whole
    assert [r.code for r in _batch(ledger, [other, original])] == ["00", "05"]
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


def test_writer_declines_the_original_after_its_reversal(ledger: Engine, node) -> None:  # type: ignore[no-untyped-def]
    original = payment(_util(ledger), "1000001", 12345)
    n: Node = node()
    n.start()
    assert n.submit(reversal(original, advice=True)).get().code == "00"
    assert n.submit(original).get().code == "05"
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 0
        assert_invariants(conn)


@pytest.mark.parametrize("look_up", [False, True])
def test_reversal_then_its_original_in_one_batch(ledger: Engine, look_up: bool) -> None:
    """Arrival order in one group commit: the later stage sees the tombstone in memory,
    without failing the batch."""
    original = payment(_util(ledger), "1000001", 12345)
    again = reversal(original)  # a second reversal of the same unseen original
    other = payment(_util(ledger), "1000002", 1000)
    orders = [reversal(original, advice=True), again, original, other]
    assert [r.code for r in _batch(ledger, orders, look_up)] == ["00", "25", "05", "00"]
    assert _state(ledger, original.key) == ("reversed_first", None)
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345
        assert_invariants(conn)


def test_a_second_reversal_of_an_unseen_original_finds_the_tombstone(ledger: Engine) -> None:
    original = payment(_util(ledger), "1000001", 12345)
    assert record_one(ledger, reversal(original)).code == "25"
    assert record_one(ledger, reversal(original, advice=True)).code == "00"
    assert _batch(ledger, [reversal(original)], look_up=False)[0].code == "25"
    assert record_one(ledger, original).code == "05"


def test_reversal_after_its_payment_leaves_no_tombstone(ledger: Engine) -> None:
    original = payment(_util(ledger), "1000001", 12345)
    recorded = record_one(ledger, original)
    pid = int(recorded.response["payment_id"])
    assert _state(ledger, original.key) == ("paid", pid)
    assert record_one(ledger, reversal(original)).code == "00"
    assert _state(ledger, original.key) == ("paid", pid)
    assert record_one(ledger, original).response == recorded.response  # a repeat replays


# ---------------------------------------------------------------- item 2: advices


def test_advice_of_an_approved_payment_is_acknowledged_and_moves_nothing(
    ledger: Engine,
) -> None:
    original = payment(_util(ledger), "1000002", 1000)
    paid = record_one(ledger, original)
    advice = payment(_util(ledger), "1000002", 1000, stan=original.key.stan, advice=True)
    before = _money(ledger)
    acknowledged = record_one(ledger, advice)
    assert acknowledged.code == "00"
    assert acknowledged.response["payment_id"] == paid.response["payment_id"]  # its RN
    assert acknowledged.response["auth_code"] == paid.response["auth_code"]  # its DE 38
    assert _money(ledger) == before
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert request_row(conn, advice.key).payment_id is None  # it created no payment
        assert_invariants(conn)
    assert record_one(ledger, advice).response == acknowledged.response  # a 0221 replays


def test_advice_acknowledged_through_the_writer(ledger: Engine, node) -> None:  # type: ignore[no-untyped-def]
    original = payment(_util(ledger), "1000002", 1000)
    n: Node = node()
    n.start()
    paid = n.submit(original).get()
    advice = payment(_util(ledger), "1000002", 1000, stan=original.key.stan, advice=True)
    acknowledged = n.submit(advice).get()
    assert (acknowledged.code, acknowledged.response["payment_id"]) == (
        "00",
        paid.response["payment_id"],
    )
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


@pytest.mark.parametrize("look_up", [False, True])
def test_payment_and_its_advice_in_one_batch_pay_once(ledger: Engine, look_up: bool) -> None:
    original = payment(_util(ledger), "1000002", 1000)
    advice = payment(_util(ledger), "1000002", 1000, stan=original.key.stan, advice=True)
    other = payment(_util(ledger), "1000002", 2000)
    paid, second, acknowledged = _batch(ledger, [original, other, advice], look_up)
    assert (paid.code, second.code, acknowledged.code) == ("00", "00", "00")
    assert acknowledged.response["payment_id"] == paid.response["payment_id"]
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 2
        assert debt_open(conn, UTIL, "1000002", "202610") == 500000 - 3000
        assert_invariants(conn)


def test_payment_after_its_advice_is_the_same_transaction(ledger: Engine) -> None:
    advice = payment(_util(ledger), "1000002", 1000, advice=True)
    recorded = record_one(ledger, advice)
    late = record_one(ledger, payment(_util(ledger), "1000002", 1000, stan=advice.key.stan))
    assert late.code == "00" and late.response["payment_id"] == recorded.response["payment_id"]
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


@pytest.mark.parametrize(("amount", "currency"), [(999, "944"), (1000, "840")])
def test_advice_of_another_amount_than_its_payment_is_94(
    ledger: Engine, amount: int, currency: str
) -> None:
    original = payment(_util(ledger), "1000002", 1000)
    record_one(ledger, original)
    before = _money(ledger)
    advice = payment(
        _util(ledger), "1000002", amount, stan=original.key.stan, advice=True, currency=currency
    )
    assert record_one(ledger, advice).code == "94"
    assert _money(ledger) == before
    with ledger.connect() as conn:
        assert_invariants(conn)


def test_advice_of_a_declined_payment_is_recorded(ledger: Engine) -> None:
    declined = payment(_util(ledger), "1000001", 99999)  # above the due amount: 13
    assert record_one(ledger, declined).code == "13"
    advice = payment(_util(ledger), "1000001", 99999, stan=declined.key.stan, advice=True)
    recorded = record_one(ledger, advice)
    assert recorded.code == "00"
    pid = int(recorded.response["payment_id"])
    assert _state(ledger, advice.key) == ("paid", pid)
    with ledger.connect() as conn:
        assert journal_rows(conn, pid) == [("payment", 99999)]
        assert debt_open(conn, UTIL, "1000001", "202611") == 0
        assert_invariants(conn)


# ---------------------------------------------------------------- item 4: naming the original


@pytest.mark.parametrize("advice", [False, True])
@pytest.mark.parametrize(
    "named", [{"amount": 1000}, {"amount": 99999}, {"currency": "840"}, {"kept": 12346}]
)
def test_reversal_that_misnames_its_original_is_declined(
    ledger: Engine, advice: bool, named: dict[str, Any]
) -> None:
    original = payment(_util(ledger), "1000001", 12345)
    recorded = record_one(ledger, original)
    pid = int(recorded.response["payment_id"])
    before = _money(ledger)
    rev = reversal(original, advice=advice, **named)
    assert record_one(ledger, rev).code == "13"
    assert _money(ledger) == before
    with ledger.connect() as conn:
        assert journal_rows(conn, pid) == [("payment", 12345)]
        assert request_row(conn, rev.key).response_code == "13"
        assert_invariants(conn)
    assert record_one(ledger, reversal(original, advice=advice)).code == "00"  # named right


# ---------------------------------------------------------------- two nodes, one identity


def _race(ledger: Engine, node, db_url: str, first: object, second: object) -> tuple:  # type: ignore[no-untyped-def]
    """Node B records ``second``; just before B claims its identity, A commits ``first``.

    Forced with an engine event, so no timing is involved. SQLite cannot race: its
    writer holds the database lock from the start of the batch."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite writers hold the database lock for the whole batch: no window")
    node_b: Node = node()
    other: dict[str, Recorded] = {}

    @event.listens_for(node_b.engine, "before_cursor_execute")
    def _before(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "INSERT INTO transactions" in statement and "a" not in other:
            other["a"] = record_one(ledger, first)  # type: ignore[arg-type]

    node_b.start()
    got = node_b.submit(second).get()  # type: ignore[arg-type]
    assert "a" in other, "node B never claimed the identity"
    return other["a"], got


def test_reversal_committed_while_its_payment_is_in_flight_on_another_node(
    ledger: Engine, node, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    original = payment(_util(ledger), "1000001", 12345)
    rev = reversal(original, advice=True)
    got_rev, got_payment = _race(ledger, node, db_url, rev, original)
    assert got_rev.code == "00"
    assert isinstance(got_payment, Recorded) and got_payment.code == "05"
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 0
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345
        assert_invariants(conn)


def test_payment_committed_while_its_reversal_is_in_flight_on_another_node(
    ledger: Engine, node, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    original = payment(_util(ledger), "1000001", 12345)
    rev = reversal(original)
    got_payment, got_rev = _race(ledger, node, db_url, original, rev)
    assert got_payment.code == "00"
    assert isinstance(got_rev, Recorded) and got_rev.code == "00"  # not 25: it found it
    pid = int(got_payment.response["payment_id"])
    with ledger.connect() as conn:
        assert journal_rows(conn, pid) == [("payment", 12345), ("reversal", 12345)]
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345
        assert_invariants(conn)


def test_payment_committed_while_its_advice_is_in_flight_on_another_node(
    ledger: Engine, node, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    original = payment(_util(ledger), "1000002", 1000)
    # to suspense: B's advice locks no debt that A's payment needs
    advice = payment(None, "1000002", 1000, stan=original.key.stan, advice=True)
    got_payment, got_advice = _race(ledger, node, db_url, original, advice)
    assert got_advice.code == got_payment.code == "00"
    assert got_payment.response["payment_id"] == got_advice.response["payment_id"]
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


# ---------------------------------------------------------------- the hot path


def _statements(ledger: Engine, orders: list) -> list[str]:  # type: ignore[type-arg]
    seen: list[str] = []

    def _count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(ledger, "before_cursor_execute", _count)
    try:
        recorded = _batch(ledger, orders, look_up=False)
    finally:
        event.remove(ledger, "before_cursor_execute", _count)
    assert {r.code for r in recorded} == {"00"}
    return seen


def test_identities_cost_one_statement_per_batch_of_payments(ledger: Engine) -> None:
    """The approved-payment path gains one multi-row insert per batch, whatever its size."""
    _statements(ledger, [payment(_util(ledger), "1000002", 10)])  # accounts now known here
    few = _statements(ledger, [payment(_util(ledger), "1000002", 10) for _ in range(2)])
    many = _statements(ledger, [payment(_util(ledger), "1000002", 10) for _ in range(40)])
    assert len(few) == len(many)
    assert sum("INSERT INTO transactions" in x for x in many) == 1
    assert not any(x.startswith("SELECT") and "transactions" in x for x in many)
