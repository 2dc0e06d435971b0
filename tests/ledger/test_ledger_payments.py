"""postings.record with PaymentOrder: approvals, declines, advices, fees, duplicates."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from switch.ledger import queries
from switch.ledger import schema as s
from switch.ledger.fees import PAYER, Fee
from switch.ledger.postings import PaymentOrder, record
from switch.ledger.reference import load_reference
from tests.ledger.ledger_support import (
    CUR,
    FEE_INCOME,
    NOW,
    RECV,
    SUSPENSE,
    assert_invariants,
    billers,
    count,
    debt_open,
    journal_rows,
    money_rows,
    payable,
    payment,
    record_one,
    request_row,
    snapshot,
)

UTIL = "UTIL01"


@pytest.fixture
def util(ledger: Engine):  # type: ignore[no-untyped-def]
    return billers(ledger)[UTIL]


def test_reference_loads_the_billers(ledger: Engine) -> None:
    b = billers(ledger)
    assert b[UTIL].currency == CUR and b[UTIL].partial_allowed and not b[UTIL].overpay_allowed
    with ledger.connect() as conn:
        fees = load_reference(conn).fees
    assert fees.price("FEE01", "ATM", "100001", 4000) == Fee(150, PAYER)
    assert not b["FULL01"].partial_allowed
    assert b["OVER01"].overpay_allowed


def test_approval_writes_payment_allocation_debt_journal_and_request(ledger: Engine, util) -> None:
    order = payment(util, "1000001", 12345)
    recorded = record_one(ledger, order)

    assert recorded.code == "00" and not recorded.replay
    payment_id = int(recorded.response["payment_id"])
    assert recorded.response["due"] == "0"
    assert len(recorded.response["auth_code"]) == 6
    with ledger.connect() as conn:
        p = conn.execute(select(s.payments).where(s.payments.c.id == payment_id)).one()
        assert (p.acquirer_id, p.terminal_id, p.biller_code, p.account) == (
            "100001",
            "ATM00001",
            UTIL,
            "1000001",
        )
        assert (p.amount, p.fee, p.reversed_amount, p.currency, p.advice) == (
            12345,
            0,
            0,
            CUR,
            False,
        )
        assert p.auth_code == recorded.response["auth_code"]
        assert p.business_day == order.business_day
        allocations = conn.execute(select(s.allocations.c.debt_id, s.allocations.c.amount)).all()
        assert len(allocations) == 1 and allocations[0].amount == 12345
        assert debt_open(conn, UTIL, "1000001", "202611") == 0
        assert journal_rows(conn, payment_id) == [("payment", 12345)]
        req = request_row(conn, order.key)
        assert req.response_code == "00" and req.payment_id == payment_id
        assert req.request_hash == order.request_hash
        assert json.loads(req.response) == recorded.response
        assert queries.balances(conn) == {RECV: 12345, payable(UTIL): -12345}
        assert_invariants(conn)


def test_partial_payment_pays_oldest_debt_first(ledger: Engine, util) -> None:
    # 1000002 owes 500000 for 202610 and 250000 for 202611.
    first = record_one(ledger, payment(util, "1000002", 600000))
    assert first.code == "00" and first.response["due"] == "150000"
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000002", "202610") == 0
        assert debt_open(conn, UTIL, "1000002", "202611") == 150000
        a, d = s.allocations.c, s.debts.c
        split = conn.execute(
            select(d.period, a.amount).join(s.debts, d.id == a.debt_id).order_by(d.period)
        ).all()
        assert [tuple(r) for r in split] == [("202610", 500000), ("202611", 100000)]
        assert_invariants(conn)

    second = record_one(ledger, payment(util, "1000002", 100000))
    assert second.code == "00" and second.response["due"] == "50000"
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000002", "202611") == 50000
        assert queries.balances(conn) == {RECV: 700000, payable(UTIL): -700000}
        assert_invariants(conn)


def test_payment_for_one_period_pays_only_that_period(ledger: Engine, util) -> None:
    recorded = record_one(ledger, payment(util, "1000002", 250000, period="202611"))
    assert recorded.code == "00" and recorded.response["due"] == "0"
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000002", "202610") == 500000
        assert debt_open(conn, UTIL, "1000002", "202611") == 0
        assert_invariants(conn)


def test_unknown_account_declines_14_and_writes_only_the_request(ledger: Engine, util) -> None:
    with ledger.connect() as conn:
        before = snapshot(conn)
    order = payment(util, "9999999", 100)
    recorded = record_one(ledger, order)
    assert recorded.code == "14" and recorded.response == {"39": "14"}
    with ledger.connect() as conn:
        after = snapshot(conn)
        assert after == {**before, "requests": before["requests"] + 1}
        req = request_row(conn, order.key)
        assert req.response_code == "14" and req.payment_id is None
        assert_invariants(conn)


@pytest.mark.parametrize(
    ("biller_code", "account", "amount", "due"),
    [
        (UTIL, "1000001", 12346, 12345),  # above the amount due, overpayment forbidden
        (UTIL, "1000003", 1, 0),  # nothing due at all
        ("FULL01", "U1", 4999, 5000),  # below the amount due, partial payment forbidden
        ("FULL01", "U1", 5001, 5000),  # and above it
    ],
)
def test_amount_rules_decline_13_and_write_only_the_request(
    ledger: Engine, biller_code: str, account: str, amount: int, due: int
) -> None:
    biller = billers(ledger)[biller_code]
    with ledger.connect() as conn:
        before = snapshot(conn)
    order = payment(biller, account, amount)
    recorded = record_one(ledger, order)
    assert recorded.code == "13"
    assert recorded.response == {"39": "13", "due": str(due)}
    with ledger.connect() as conn:
        assert snapshot(conn) == {**before, "requests": before["requests"] + 1}
        assert request_row(conn, order.key).response_code == "13"
        assert_invariants(conn)


def test_exact_amount_passes_where_partial_is_forbidden(ledger: Engine) -> None:
    recorded = record_one(ledger, payment(billers(ledger)["FULL01"], "U1", 5000))
    assert recorded.code == "00"
    with ledger.connect() as conn:
        assert debt_open(conn, "FULL01", "U1", "202611") == 0
        assert_invariants(conn)


def test_overpayment_where_allowed_pays_the_debt_and_keeps_the_rest_payable(
    ledger: Engine,
) -> None:
    recorded = record_one(ledger, payment(billers(ledger)["OVER01"], "O1", 4000))
    assert recorded.code == "00" and recorded.response["due"] == "0"
    with ledger.connect() as conn:
        assert debt_open(conn, "OVER01", "O1", "202611") == 0
        assert conn.execute(select(s.allocations.c.amount)).scalars().all() == [3000]
        assert queries.balances(conn) == {RECV: 4000, payable("OVER01"): -4000}
        assert_invariants(conn)


def test_advice_records_even_above_due(ledger: Engine, util) -> None:
    order = payment(util, "1000001", 20000, advice=True)
    recorded = record_one(ledger, order)
    assert recorded.code == "00"
    with ledger.connect() as conn:
        assert debt_open(conn, UTIL, "1000001", "202611") == 0  # paid, never negative
        p = conn.execute(select(s.payments)).one()
        assert p.advice and p.amount == 20000
        assert conn.execute(select(s.allocations.c.amount)).scalars().all() == [12345]
        assert queries.balances(conn) == {RECV: 20000, payable(UTIL): -20000}
        assert request_row(conn, order.key).mti == "0220"
        assert_invariants(conn)


def test_advice_for_an_unknown_account_is_recorded(ledger: Engine, util) -> None:
    recorded = record_one(ledger, payment(util, "NOT-A-CUSTOMER", 500, advice=True))
    assert recorded.code == "00"
    with ledger.connect() as conn:
        assert count(conn, s.allocations) == 0
        assert queries.balances(conn) == {RECV: 500, payable(UTIL): -500}
        assert_invariants(conn)


def test_advice_without_biller_goes_to_suspense(ledger: Engine) -> None:
    recorded = record_one(ledger, payment(None, "ANY", 777, advice=True))
    assert recorded.code == "00"
    with ledger.connect() as conn:
        p = conn.execute(select(s.payments)).one()
        assert p.biller_code == "" and p.advice
        assert queries.balances(conn) == {RECV: 777, SUSPENSE: -777}
        assert count(conn, s.accounts, s.accounts.c.code == SUSPENSE) == 1
        assert_invariants(conn)


def test_advice_without_biller_in_a_currency_no_biller_uses(ledger: Engine) -> None:
    # The pipeline sends an 0220 whose DE 49 differs from the biller's currency to suspense
    # (steps/payment.advice_route); the spec says an advice is always recorded.
    recorded = record_one(ledger, payment(None, "ANY", 500, advice=True, currency="840"))
    assert recorded.code == "00"
    with ledger.connect() as conn:
        assert queries.balances(conn) == {"ACQ:100001:RECV:840": 500, "SUSPENSE:840": -500}
        assert_invariants(conn)


def test_fee_writes_a_second_journal_row(ledger: Engine) -> None:
    recorded = record_one(ledger, payment(billers(ledger)["FEE01"], "F1", 4000))
    assert recorded.code == "00"
    payment_id = int(recorded.response["payment_id"])
    with ledger.connect() as conn:
        assert journal_rows(conn, payment_id) == [("payment", 4000), ("fee", 150)]
        assert conn.execute(select(s.payments.c.fee)).scalar_one() == 150
        assert debt_open(conn, "FEE01", "F1", "202611") == 6000  # the fee does not pay the bill
        assert queries.balances(conn) == {
            RECV: 4150,
            payable("FEE01"): -4000,
            FEE_INCOME: -150,
        }
        assert_invariants(conn)


def test_declined_payment_with_fee_writes_no_fee(ledger: Engine) -> None:
    recorded = record_one(ledger, payment(billers(ledger)["FEE01"], "F1", 10001))
    assert recorded.code == "13"
    with ledger.connect() as conn:
        assert money_rows(conn) == {"payments": 0, "allocations": 0, "journal": 0, "entries": 0}
        assert_invariants(conn)


def test_balances_follow_many_payments(ledger: Engine) -> None:
    b = billers(ledger)
    orders = [
        payment(b[UTIL], "1000002", 1000),
        payment(b[UTIL], "1000002", 2000),
        payment(b["FEE01"], "F1", 3000),
        payment(b["FEE01"], "F1", 3000),
        payment(None, "X", 50, advice=True),
        payment(b[UTIL], "1000099", 5),  # 13: nothing due
    ]
    with ledger.begin() as conn:
        codes = [record(conn, o, NOW).code for o in orders]
    assert codes == ["00", "00", "00", "00", "00", "13"]
    with ledger.connect() as conn:
        assert queries.balances(conn) == {
            RECV: 1000 + 2000 + 3000 + 3000 + 50 + 2 * 150,
            payable(UTIL): -3000,
            payable("FEE01"): -6000,
            FEE_INCOME: -300,
            SUSPENSE: -50,
        }
        assert count(conn, s.payments) == 5
        assert count(conn, s.requests) == 6
        assert_invariants(conn)


# ---------------------------------------------------------------- duplicates


def _same(order: PaymentOrder) -> PaymentOrder:
    """The same request again, as a retransmission decodes it (a fresh order object)."""
    return payment(
        order.biller,
        order.account,
        order.amount,
        stan=order.key.stan,
        advice=order.advice,
        transmitted=order.key.transmitted,
    )


def test_retransmission_replays_the_stored_response(ledger: Engine, util) -> None:
    order = payment(util, "1000002", 1000)
    first = record_one(ledger, order)
    with ledger.connect() as conn:
        before = snapshot(conn)
    again = _same(order)
    assert again.request_hash == order.request_hash
    second = record_one(ledger, again)
    assert second.replay and not first.replay
    assert (second.code, second.response) == (first.code, first.response)
    with ledger.connect() as conn:
        assert snapshot(conn) == before
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


def test_retransmission_of_a_decline_replays_the_decline(ledger: Engine, util) -> None:
    order = payment(util, "1000001", 99999)
    first = record_one(ledger, order)
    assert first.code == "13"
    # Even if the debt changed since, the stored answer is given again.
    second = record_one(ledger, _same(order))
    assert second.replay and (second.code, second.response) == ("13", first.response)
    with ledger.connect() as conn:
        assert count(conn, s.requests) == 1
        assert_invariants(conn)


def test_retransmission_in_the_same_transaction_replays(ledger: Engine, util) -> None:
    order = payment(util, "1000002", 1000)
    with ledger.begin() as conn:
        first = record(conn, order, NOW)
        second = record(conn, _same(order), NOW)
    assert second.replay and second.response == first.response
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


def test_same_key_different_content_gets_94_and_writes_nothing(ledger: Engine, util) -> None:
    order = payment(util, "1000002", 1000)
    first = record_one(ledger, order)
    with ledger.connect() as conn:
        before = snapshot(conn)
        stored = request_row(conn, order.key)
    other = payment(util, "1000002", 2000, stan=order.key.stan)
    assert other.key == order.key and other.request_hash != order.request_hash
    recorded = record_one(ledger, other)
    assert recorded.code == "94" and recorded.response == {"39": "94"}
    assert not recorded.replay
    with ledger.connect() as conn:
        assert snapshot(conn) == before
        assert request_row(conn, order.key) == stored  # the original answer is untouched
        assert_invariants(conn)
    # and the original still replays
    assert record_one(ledger, _same(order)).response == first.response


def test_same_stan_other_terminal_or_time_is_another_request(ledger: Engine, util) -> None:
    order = payment(util, "1000002", 1000)
    others = [
        payment(util, "1000002", 1000, stan=order.key.stan, terminal="ATM00002"),
        payment(util, "1000002", 1000, stan=order.key.stan, transmitted="1122101501"),
    ]
    assert [record_one(ledger, o).code for o in [order, *others]] == ["00"] * 3
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 3
        assert_invariants(conn)
