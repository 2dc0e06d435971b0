"""Fees in the ledger (issue 12), on SQLite and PostgreSQL: a fee is its own journal row of
kind ``fee`` linked to its payment, same business day, same transaction. A payer's fee is
owed by the acquirer on top of the amount; a biller's is taken from the biller's payable.
Both credit the fee income. A full reversal reverses the fee (``fee_reversal``, entries
mirrored); a partial one leaves it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, select

from switch import demo
from switch.ledger import queries
from switch.ledger import schema as s
from switch.ledger.fees import BILLER, PAYER, FeeRule, FeeRules
from switch.ledger.postings import record_batch
from switch.ledger.queries import Totals
from tests.ledger.ledger_support import (
    DAY,
    FEE_INCOME,
    HASHER,
    NOW,
    RECV,
    assert_invariants,
    billers,
    payable,
    payment,
    record_one,
    reversal,
)

UTIL = "UTIL01"
OVER = "OVER01"  # held, overpayment allowed; account O1 owes 3000
# UTIL01 1 %, at least 50: paid by the payer, or by the biller.
BY_PAYER = FeeRules([FeeRule(1, UTIL, None, None, percent_bp=100, min_fee=50)])
BY_BILLER = FeeRules([FeeRule(1, UTIL, None, None, percent_bp=100, min_fee=50, payer=BILLER)])


def _journal(conn: Any, payment_id: int) -> list[tuple[str, str | None, Any, list]]:
    """``(kind, acquirer, business day, [(account, amount)...])`` of a payment's rows."""
    j, e = s.journal.c, s.entries.c
    rows = conn.execute(
        select(j.id, j.kind, j.acquirer_id, j.business_day)
        .where(j.payment_id == payment_id)
        .order_by(j.id)
    ).all()
    return [
        (
            kind,
            acquirer,
            day,
            sorted(conn.execute(select(e.account_code, e.amount).where(e.journal_id == jid)).all()),
        )
        for jid, kind, acquirer, day in rows
    ]


def _pay(ledger: Engine, fees: FeeRules, amount: int, account: str = "1000002") -> Any:
    order = payment(billers(ledger)[UTIL], account, amount, fees=fees)
    recorded = record_one(ledger, order)
    assert recorded.code == "00", recorded
    return order, int(recorded.response["payment_id"])


def test_a_payers_fee_is_owed_by_the_acquirer_on_top(ledger: Engine) -> None:
    _, pid = _pay(ledger, BY_PAYER, 10_000)
    with ledger.connect() as conn:
        row = conn.execute(select(s.payments).where(s.payments.c.id == pid)).one()
        assert (row.amount, row.fee, row.fee_payer) == (10_000, 100, PAYER)
        assert _journal(conn, pid) == [
            ("payment", "100001", DAY, sorted([(RECV, 10_000), (payable(UTIL), -10_000)])),
            ("fee", "100001", DAY, sorted([(RECV, 100), (FEE_INCOME, -100)])),
        ]
        balances = queries.balances(conn)
        assert (balances[RECV], balances[payable(UTIL)], balances[FEE_INCOME]) == (
            10_100,
            -10_000,
            -100,
        )
        totals = queries.acquirer_totals(conn, "100001", DAY)
        assert totals == Totals(payments=1, payment_amount=10_000, fees=100)
        assert totals.net == 10_100 == balances[RECV]
        assert_invariants(conn)


def test_a_billers_fee_reduces_what_the_biller_is_owed(ledger: Engine) -> None:
    _, pid = _pay(ledger, BY_BILLER, 2_000)  # 1 % is 20: the minimum 50
    with ledger.connect() as conn:
        row = conn.execute(select(s.payments).where(s.payments.c.id == pid)).one()
        assert (row.amount, row.fee, row.fee_payer) == (2_000, 50, BILLER)
        assert _journal(conn, pid) == [
            ("payment", "100001", DAY, sorted([(RECV, 2_000), (payable(UTIL), -2_000)])),
            # no acquirer: it owes nothing for this fee
            ("fee", None, DAY, sorted([(payable(UTIL), 50), (FEE_INCOME, -50)])),
        ]
        balances = queries.balances(conn)
        assert (balances[RECV], balances[payable(UTIL)], balances[FEE_INCOME]) == (
            2_000,
            -1_950,
            -50,
        )
        totals = queries.acquirer_totals(conn, "100001", DAY)
        assert totals == Totals(payments=1, payment_amount=2_000)
        assert totals.net == balances[RECV]
        assert_invariants(conn)


@pytest.mark.parametrize("fees", [BY_PAYER, BY_BILLER], ids=[PAYER, BILLER])
def test_a_full_reversal_reverses_the_fee_with_mirrored_entries(
    ledger: Engine, fees: FeeRules
) -> None:
    order, pid = _pay(ledger, fees, 10_000)
    assert record_one(ledger, reversal(order)).code == "00"
    debtor = RECV if fees is BY_PAYER else payable(UTIL)
    owner = "100001" if fees is BY_PAYER else None
    with ledger.connect() as conn:
        journal = _journal(conn, pid)
        assert [kind for kind, *_ in journal] == ["payment", "fee", "reversal", "fee_reversal"]
        assert journal[1] == ("fee", owner, DAY, sorted([(debtor, 100), (FEE_INCOME, -100)]))
        assert journal[3] == (
            "fee_reversal",
            owner,
            DAY,
            sorted([(debtor, -100), (FEE_INCOME, 100)]),
        )
        balances = queries.balances(conn)
        assert (balances[RECV], balances[payable(UTIL)], balances[FEE_INCOME]) == (0, 0, 0)
        assert queries.acquirer_totals(conn, "100001", DAY).net == 0
        assert_invariants(conn)


@pytest.mark.parametrize("fees", [BY_PAYER, BY_BILLER], ids=[PAYER, BILLER])
def test_a_partial_reversal_leaves_the_fee_the_last_reversal_takes_it_back(
    ledger: Engine, fees: FeeRules
) -> None:
    order, pid = _pay(ledger, fees, 10_000)
    assert record_one(ledger, reversal(order, kept=6_000)).code == "00"
    with ledger.connect() as conn:
        assert [kind for kind, *_ in _journal(conn, pid)] == ["payment", "fee", "reversal"]
        assert queries.balances(conn)[FEE_INCOME] == -100
        assert_invariants(conn)
    assert record_one(ledger, reversal(order, kept=0)).code == "00"
    with ledger.connect() as conn:
        kinds = [kind for kind, *_ in _journal(conn, pid)]
        assert kinds == ["payment", "fee", "reversal", "reversal", "fee_reversal"]
        assert queries.balances(conn)[FEE_INCOME] == 0
        assert_invariants(conn)


def test_without_a_rule_nothing_but_the_payment(ledger: Engine) -> None:
    _, pid = _pay(ledger, FeeRules(), 10_000)
    with ledger.connect() as conn:
        assert [kind for kind, *_ in _journal(conn, pid)] == ["payment"]
        row = conn.execute(select(s.payments).where(s.payments.c.id == pid)).one()
        assert (row.fee, row.fee_payer) == (0, PAYER)
        assert FEE_INCOME not in queries.balances(conn) or queries.balances(conn)[FEE_INCOME] == 0


def test_fees_of_both_payers_in_one_batch(ledger: Engine) -> None:
    """Several payments of one batch, fees by payer and by biller: one transaction, every
    row balanced, the fee income the sum of both."""
    b = billers(ledger)
    mixed = FeeRules(
        [
            FeeRule(1, UTIL, None, None, fixed=30),
            FeeRule(2, OVER, None, None, fixed=20, payer=BILLER),
        ]
    )
    orders = [
        payment(b[UTIL], "1000002", 1_000, fees=mixed),
        payment(b[OVER], "O1", 500, fees=mixed),
        payment(b[UTIL], "1000002", 1_000, fees=mixed),
        payment(b[OVER], "O1", 700, fees=mixed),
    ]
    with ledger.begin() as conn:
        results = record_batch(conn, orders, NOW, look_up=False, clock_day=DAY)
    assert [r.code for r in results] == ["00"] * 4
    with ledger.connect() as conn:
        balances = queries.balances(conn)
        assert balances[FEE_INCOME] == -(30 + 20 + 30 + 20)
        assert balances[RECV] == 1_000 + 30 + 500 + 1_000 + 30 + 700
        assert balances[payable(OVER)] == -(500 - 20 + 700 - 20)
        assert queries.acquirer_totals(conn, "100001", DAY).fees == 60
        assert_invariants(conn)


@pytest.mark.parametrize("fees", [BY_PAYER, BY_BILLER], ids=[PAYER, BILLER])
def test_an_on_us_wallet_pays_a_payers_fee_and_gets_it_back(ledger: Engine, fees: FeeRules) -> None:
    """The wallet pays what the payer owes: amount + a payer's fee (amount alone when the
    biller pays); a full reversal gives it all back."""
    with ledger.begin() as conn:
        demo.load_demo_card(conn, HASHER.pan(demo.DEMO_CARD_PAN))
        wallet = conn.execute(select(s.cards.c.wallet_account)).scalar_one()
    order = replace(payment(billers(ledger)[UTIL], "1000002", 10_000, fees=fees), wallet=wallet)
    assert record_one(ledger, order).code == "00"
    paid = 10_000 + (100 if fees is BY_PAYER else 0)
    with ledger.connect() as conn:
        funds = conn.execute(select(s.cards.c.funds)).scalar_one()
        assert funds == demo.DEMO_WALLET_FUNDS - paid
        assert queries.balances(conn)[FEE_INCOME] == -100
        assert_invariants(conn)
    assert record_one(ledger, reversal(order)).code == "00"
    with ledger.connect() as conn:
        assert conn.execute(select(s.cards.c.funds)).scalar_one() == demo.DEMO_WALLET_FUNDS
        assert queries.balances(conn)[FEE_INCOME] == 0
        assert_invariants(conn)


def test_a_wallet_short_of_the_fee_gets_51(ledger: Engine) -> None:
    with ledger.begin() as conn:
        demo.load_demo_card(conn, HASHER.pan(demo.DEMO_CARD_PAN))
        wallet = conn.execute(select(s.cards.c.wallet_account)).scalar_one()
    everything = demo.DEMO_WALLET_FUNDS
    rules = FeeRules([FeeRule(1, "OVER01", None, None, fixed=1)])
    order = replace(payment(billers(ledger)["OVER01"], "O1", everything, fees=rules), wallet=wallet)
    assert record_one(ledger, order).code == "51"  # the amount it has, not the fee
