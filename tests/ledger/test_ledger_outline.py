"""Outline billers in the ledger (issue 11): payments skip the debts (any account, no DU)
and post the same journal entries as held payments; they share a batch with held payments
of an account of the same name without touching its debts; reversals give the money back."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert, select

from switch.ledger import schema as s
from switch.ledger.postings import record_batch
from switch.ledger.reference import Biller
from tests.ledger.ledger_support import (
    CUR,
    NOW,
    RECV,
    assert_invariants,
    billers,
    count,
    debt_open,
    payable,
    payment,
    reversal,
)

OUT = "OUT01"


@pytest.fixture
def outline(ledger: Engine) -> Biller:
    with ledger.begin() as conn:
        conn.execute(
            insert(s.billers).values(
                code=OUT, name="Top-up", kind="outline", currency=CUR, min_amount=100,
                max_amount=5000, partial_allowed=True, overpay_allowed=True, fee_fixed=0,
                settlement_account=None, status="active",
            )
        )  # fmt: skip
    return billers(ledger)[OUT]


def _entries(conn, payment_id: int) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    j, e = s.journal.c, s.entries.c
    query = (
        select(j.kind, e.account_code, e.amount)
        .join(s.entries, e.journal_id == j.id)
        .where(j.payment_id == payment_id)
        .order_by(j.id, e.id)
    )
    return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


def test_outline_payments_skip_the_debts_and_post_like_held_ones(
    ledger: Engine, outline: Biller
) -> None:
    util = billers(ledger)["UTIL01"]
    held = payment(util, "1000001", 1000)
    same_name = payment(outline, "1000001", 700)  # UTIL01's customer number, at OUT01
    anyone = payment(outline, "no-such-customer", 300)
    advice = payment(outline, "994500000000", 200, advice=True)
    with ledger.begin() as conn:
        answers = record_batch(conn, [held, same_name, anyone, advice], NOW)
    assert [a.code for a in answers] == ["00"] * 4
    assert answers[0].response["due"] == str(12345 - 1000)
    for answer in answers[1:]:
        assert "due" not in answer.response and len(answer.response["auth_code"]) == 6
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 12345 - 1000
        ids = [int(a.response["payment_id"]) for a in answers]
        a = s.allocations.c
        assert count(conn, s.allocations, a.payment_id.in_(ids[1:])) == 0
        assert _entries(conn, ids[1]) == [("payment", RECV, 700), ("payment", payable(OUT), -700)]
        assert_invariants(conn)


def test_reversal_of_an_outline_payment(ledger: Engine, outline: Biller) -> None:
    paid = payment(outline, "994501234567", 2500)
    with ledger.begin() as conn:
        payment_id = int(record_batch(conn, [paid], NOW)[0].response["payment_id"])
    with ledger.begin() as conn:
        partial, full = record_batch(conn, [reversal(paid, 1000), reversal(paid)], NOW)
    assert (partial.code, full.code) == ("00", "00")
    with ledger.connect() as conn:
        assert _entries(conn, payment_id) == [
            ("payment", RECV, 2500),
            ("payment", payable(OUT), -2500),
            ("reversal", RECV, -1500),
            ("reversal", payable(OUT), 1500),
            ("reversal", RECV, -1000),
            ("reversal", payable(OUT), 1000),
        ]
        reversed_amount = select(s.payments.c.reversed_amount).where(s.payments.c.id == payment_id)
        assert conn.execute(reversed_amount).scalar_one() == 2500
        assert_invariants(conn)
