"""postings.record with ReversalOrder: full, partial, repeated, over several debts, unknown."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from switch.ledger import queries
from switch.ledger import schema as s
from switch.ledger.postings import Recorded, RequestKey, record
from tests.ledger.ledger_support import (
    FEE_INCOME,
    NOW,
    RECV,
    SUSPENSE,
    assert_invariants,
    billers,
    count,
    debt_open,
    journal_rows,
    payable,
    payment,
    record_one,
    request_row,
    reversal,
    snapshot,
)

UTIL = "UTIL01"


def _pay(ledger: Engine, biller_code: str | None, account: str, amount: int, **kw) -> tuple:  # type: ignore[no-untyped-def]
    biller = billers(ledger)[biller_code] if biller_code else None
    order = payment(biller, account, amount, **kw)
    recorded = record_one(ledger, order)
    assert recorded.code == "00"
    return order, int(recorded.response["payment_id"])


def _reversed(ledger: Engine, payment_id: int) -> int:
    with ledger.connect() as conn:
        return conn.execute(
            select(s.payments.c.reversed_amount).where(s.payments.c.id == payment_id)
        ).scalar_one()


def test_full_reversal_restores_the_debt_and_balances(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 12345)
    rev = reversal(order)
    recorded = record_one(ledger, rev)
    assert recorded.code == "00" and recorded.response == {"39": "00", "payment_id": str(pid)}
    assert _reversed(ledger, pid) == 12345
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345
        assert journal_rows(conn, pid) == [("payment", 12345), ("reversal", 12345)]
        assert queries.balances(conn) == {RECV: 0, payable(UTIL): 0}
        req = request_row(conn, rev.key)
        assert (req.mti, req.response_code, req.payment_id) == ("0400", "00", pid)
        assert_invariants(conn)


def test_partial_reversal_keeps_the_dispensed_amount(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 12345)
    assert record_one(ledger, reversal(order, kept=10000)).code == "00"
    assert _reversed(ledger, pid) == 2345
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000001", "202611") == 2345
        assert journal_rows(conn, pid) == [("payment", 12345), ("reversal", 2345)]
        assert queries.balances(conn) == {RECV: 10000, payable(UTIL): -10000}
        assert_invariants(conn)


def test_reversing_twice_changes_nothing(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 12345)
    assert record_one(ledger, reversal(order, kept=10000)).code == "00"
    with ledger.connect() as conn:
        before = snapshot(conn)
    # a second reversal (another key) to the same point, and one that would keep more
    for again in (reversal(order, kept=10000), reversal(order, kept=11000, advice=True)):
        recorded = record_one(ledger, again)
        assert recorded.code == "00" and not recorded.replay
    with ledger.connect() as conn:
        after = snapshot(conn)
        assert after == {**before, "requests": before["requests"] + 2}
        assert_invariants(conn)
    assert _reversed(ledger, pid) == 2345


def test_partial_then_full_reversal(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 12345)
    assert record_one(ledger, reversal(order, kept=10000)).code == "00"
    assert record_one(ledger, reversal(order, kept=0)).code == "00"
    assert _reversed(ledger, pid) == 12345
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345
        assert journal_rows(conn, pid) == [
            ("payment", 12345),
            ("reversal", 2345),
            ("reversal", 10000),
        ]
        assert queries.balances(conn) == {RECV: 0, payable(UTIL): 0}
        assert_invariants(conn)


def test_kept_above_the_amount_is_declined_and_reverses_nothing(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 12345)
    assert record_one(ledger, reversal(order, kept=99999)).code == "13"  # DE 95 > DE 4
    assert _reversed(ledger, pid) == 0
    with ledger.connect() as conn:
        assert journal_rows(conn, pid) == [("payment", 12345)]
        assert_invariants(conn)


def test_retransmitted_reversal_replays(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 12345)
    rev = reversal(order)
    first = record_one(ledger, rev)
    again = reversal(order, stan=rev.key.stan)
    assert again.key == rev.key and again.request_hash == rev.request_hash
    second = record_one(ledger, again)
    assert second.replay and second.response == first.response
    other = reversal(order, kept=1, stan=rev.key.stan)  # same key, other content
    assert record_one(ledger, other).code == "94"
    with ledger.connect() as conn:
        assert journal_rows(conn, pid) == [("payment", 12345), ("reversal", 12345)]
        assert_invariants(conn)


def test_reversal_over_two_debts_restores_the_newest_first(ledger: Engine) -> None:
    # 600000 paid 202610 in full (500000) and 100000 of 202611.
    order, pid = _pay(ledger, UTIL, "1000002", 600000)
    assert record_one(ledger, reversal(order, kept=450000)).code == "00"  # 150000 back
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000002", "202611") == 250000  # newest: 100000 back
        assert debt_open(conn, UTIL, "1000002", "202610") == 50000  # then 50000
        a, d = s.allocations.c, s.debts.c
        rows = conn.execute(
            select(d.period, a.amount, a.reversed_amount)
            .join(s.debts, d.id == a.debt_id)
            .order_by(d.period)
        ).all()
        assert [tuple(r) for r in rows] == [("202610", 500000, 50000), ("202611", 100000, 100000)]
        assert_invariants(conn)

    assert record_one(ledger, reversal(order)).code == "00"
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000002", "202610") == 500000
        assert debt_open(conn, UTIL, "1000002", "202611") == 250000
        assert queries.balances(conn) == {RECV: 0, payable(UTIL): 0}
        assert_invariants(conn)
    assert _reversed(ledger, pid) == 600000


@pytest.mark.parametrize(("biller_code", "account", "due", "advice"), [
    (UTIL, "1000001", 12345, True),  # an advice above the amount due
    ("OVER01", "O1", 3000, False),  # a payment above due where overpayment is allowed
])  # fmt: skip
def test_partial_reversal_of_an_overpayment_takes_back_the_surplus_first(
    ledger: Engine, biller_code: str, account: str, due: int, advice: bool
) -> None:
    amount = due + 5000
    order, pid = _pay(ledger, biller_code, account, amount, advice=advice)
    with ledger.connect() as conn:
        assert debt_open(conn, biller_code, account, "202611") == 0
    # The payer keeps due + 1000: still more than the debt, so the debt stays paid,
    # as if the payment had been for the kept amount from the start.
    assert record_one(ledger, reversal(order, kept=due + 1000)).code == "00"
    with ledger.connect() as conn:
        assert debt_open(conn, biller_code, account, "202611") == 0
        assert_invariants(conn)
    assert record_one(ledger, reversal(order)).code == "00"
    with ledger.connect() as conn:
        assert debt_open(conn, biller_code, account, "202611") == due
        assert queries.balances(conn) == {RECV: 0, payable(biller_code): 0}
        assert_invariants(conn)
    assert _reversed(ledger, pid) == amount


def test_full_reversal_of_an_overpayment_restores_the_debt_once(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 20000, advice=True)
    assert record_one(ledger, reversal(order)).code == "00"
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345  # never above the original
        assert queries.balances(conn) == {RECV: 0, payable(UTIL): 0}
        assert_invariants(conn)
    assert _reversed(ledger, pid) == 20000


def test_reversal_of_a_suspense_advice(ledger: Engine) -> None:
    order, pid = _pay(ledger, None, "X", 800, advice=True)
    assert record_one(ledger, reversal(order, advice=True)).code == "00"
    with ledger.connect() as conn:
        assert queries.balances(conn) == {RECV: 0, SUSPENSE: 0}
        assert_invariants(conn)


@pytest.mark.parametrize(("advice", "code"), [(False, "25"), (True, "00")])
def test_unknown_original(ledger: Engine, advice: bool, code: str) -> None:
    with ledger.connect() as conn:
        before = snapshot(conn)
    unknown = RequestKey("100001", "ATM00001", "999999", "1122000000", "0200")
    rev = reversal(unknown, advice=advice)
    recorded = record_one(ledger, rev)
    assert recorded.code == code and recorded.response == {"39": code}
    with ledger.connect() as conn:
        assert snapshot(conn) == {**before, "requests": before["requests"] + 1}
        assert request_row(conn, rev.key).response_code == code
        assert_invariants(conn)


@pytest.mark.parametrize(("advice", "code"), [(False, "25"), (True, "00")])
def test_reversal_of_a_declined_payment_finds_no_original(
    ledger: Engine, advice: bool, code: str
) -> None:
    declined = payment(billers(ledger)[UTIL], "1000001", 99999)
    assert record_one(ledger, declined).code == "13"
    assert record_one(ledger, reversal(declined, advice=advice)).code == code
    with ledger.connect() as conn:
        assert count(conn, s.journal) == 0
        assert_invariants(conn)


def test_reversal_from_another_terminal_does_not_find_the_original(ledger: Engine) -> None:
    order, pid = _pay(ledger, UTIL, "1000001", 12345)
    k = order.key
    elsewhere = RequestKey(k.acquirer_id, "ATM00002", k.stan, k.transmitted, k.mti)
    assert record_one(ledger, reversal(elsewhere)).code == "25"
    assert _reversed(ledger, pid) == 0


def test_fee_is_reversed_only_with_a_full_reversal(ledger: Engine) -> None:
    order, pid = _pay(ledger, "FEE01", "F1", 4000)
    assert record_one(ledger, reversal(order, kept=3000)).code == "00"
    with ledger.connect() as conn:
        assert journal_rows(conn, pid) == [("payment", 4000), ("fee", 150), ("reversal", 1000)]
        assert queries.balances(conn)[FEE_INCOME] == -150
        assert_invariants(conn)
    assert record_one(ledger, reversal(order)).code == "00"
    with ledger.connect() as conn:
        assert journal_rows(conn, pid) == [
            ("payment", 4000),
            ("fee", 150),
            ("reversal", 1000),
            ("reversal", 3000),
            ("fee_reversal", 150),
        ]
        assert queries.balances(conn) == {RECV: 0, payable("FEE01"): 0, FEE_INCOME: 0}
        assert debt_open(conn, "FEE01", "F1", "202611") == 10000
        assert_invariants(conn)
    # a further full reversal does not reverse the fee again
    assert record_one(ledger, reversal(order)).code == "00"
    with ledger.connect() as conn:
        assert [k for k, _ in journal_rows(conn, pid)].count("fee_reversal") == 1
        assert_invariants(conn)


def test_reversal_and_payment_in_one_transaction(ledger: Engine) -> None:
    """A batch may carry a payment and its reversal together: the reversal sees the payment."""
    order = payment(billers(ledger)[UTIL], "1000001", 12345)
    with ledger.begin() as conn:
        results: list[Recorded] = [record(conn, o, NOW) for o in (order, reversal(order))]
    assert [r.code for r in results] == ["00", "00"]
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000001", "202611") == 12345
        assert_invariants(conn)
