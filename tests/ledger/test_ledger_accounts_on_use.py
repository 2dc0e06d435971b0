"""Ledger accounts come into being on first use (issue 8 item 7), also after a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert, select

from switch.ledger import accounts as acc
from switch.ledger import schema as s
from switch.ledger.postings import record
from switch.ledger.reference import load_reference
from tests.ledger.ledger_support import NOW, assert_invariants, payment, record_one


def _new_biller(ledger: Engine, code: str) -> None:
    with ledger.begin() as conn:
        conn.execute(
            insert(s.billers).values(
                code=code, name=code, kind="held", currency="944", min_amount=1,
                max_amount=None, partial_allowed=True, overpay_allowed=False, fee_fixed=0,
                settlement_account=None, status="active",
            )
        )  # fmt: skip
        conn.execute(insert(s.customers).values(biller_code=code, account="A1", name="A B."))
        conn.execute(
            insert(s.debts).values(
                biller_code=code, account="A1", period="202611", invoice=None,
                amount_original=9000, amount_open=9000,
            )
        )  # fmt: skip


class _Rollback(Exception):
    pass


def test_a_biller_added_later_is_paid_even_after_a_rolled_back_first_use(ledger: Engine) -> None:
    _new_biller(ledger, "LATE01")
    with ledger.connect() as conn:
        biller = load_reference(conn).billers["LATE01"]
    # The first batch that posts to the new account rolls back (e.g. another node took one
    # of its request keys): the account it made is gone with it, and must be made again.
    with pytest.raises(_Rollback), ledger.begin() as conn:
        assert record(conn, payment(biller, "A1", 1000), NOW).code == "00"
        raise _Rollback
    payable = acc.biller_payable("LATE01", "944")
    with ledger.connect() as conn:
        assert conn.execute(select(s.accounts).where(s.accounts.c.code == payable)).first() is None
    for amount in (1000, 2000, 3000):  # made, then found made, then known
        assert record_one(ledger, payment(biller, "A1", amount)).code == "00"
    with ledger.connect() as conn:
        kind, owner = conn.execute(
            select(s.accounts.c.kind, s.accounts.c.owner).where(s.accounts.c.code == payable)
        ).one()
        assert (kind, owner) == ("biller_payable", "LATE01")
        assert_invariants(conn)


def test_account_rows_are_derived_from_codes() -> None:
    assert acc.account_row("ACQ:300003:RECV:944") == (
        "ACQ:300003:RECV:944", "acquirer_receivable", "300003", "944",
    )  # fmt: skip
    assert acc.account_row("BIL:X1:PAY:840") == ("BIL:X1:PAY:840", "biller_payable", "X1", "840")
    assert acc.account_row("FEE:INCOME:944") == ("FEE:INCOME:944", "fee_income", "switch", "944")
    assert acc.account_row("SUSPENSE:978") == ("SUSPENSE:978", "suspense", "switch", "978")
    assert acc.account_row("WAL:0123456789abcdef") is None  # made with its card
