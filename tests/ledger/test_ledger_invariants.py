"""assert_invariants itself: it must notice each kind of broken ledger."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, delete, insert, update

from switch import demo
from switch.ledger import schema as s
from tests.ledger.ledger_support import (
    HASHER,
    NOW,
    RECV,
    assert_invariants,
    billers,
    payment,
    record_one,
)


def _unbalance(conn: Connection) -> None:
    conn.execute(update(s.entries).where(s.entries.c.amount > 0).values(amount=1))


def _negative_debt(conn: Connection) -> None:
    conn.execute(update(s.debts).where(s.debts.c.account == "1000002").values(amount_open=-1))


def _debt_without_allocation(conn: Connection) -> None:
    conn.execute(update(s.debts).where(s.debts.c.account == "1000001").values(amount_open=1))


def _lost_journal(conn: Connection) -> None:
    conn.execute(delete(s.entries))
    conn.execute(delete(s.journal))


def _half_done_request(conn: Connection) -> None:
    conn.execute(update(s.requests).values(response_code="--"))


def _orphan_payment(conn: Connection) -> None:
    conn.execute(update(s.requests).values(response_code="96", payment_id=None))


def _wallet_funds_drift(conn: Connection) -> None:
    """A card whose funds (kept with it) no longer match its wallet's entries."""
    demo.load_demo_card(conn, HASHER.pan(demo.DEMO_CARD_PAN))  # consistent: a funding journal
    conn.execute(update(s.cards).values(funds=s.cards.c.funds + 1))


def _one_sided_journal(conn: Connection) -> None:
    journal_id = conn.execute(
        insert(s.journal)
        .values(
            kind="settlement", amount=5, currency="944", business_day=NOW.date(), created_at=NOW
        )
        .returning(s.journal.c.id)
    ).scalar_one()
    conn.execute(insert(s.entries).values(journal_id=journal_id, account_code=RECV, amount=0))


@pytest.mark.parametrize(
    "corrupt",
    [
        _unbalance,
        _negative_debt,
        _debt_without_allocation,
        _lost_journal,
        _half_done_request,
        _orphan_payment,
        _one_sided_journal,
        _wallet_funds_drift,
    ],
)
def test_assert_invariants_notices(ledger: Engine, corrupt: Callable[[Connection], None]) -> None:
    assert record_one(ledger, payment(billers(ledger)["UTIL01"], "1000002", 1000)).code == "00"
    with ledger.connect() as conn:
        assert_invariants(conn)
    with ledger.begin() as conn:
        corrupt(conn)
    with ledger.connect() as conn, pytest.raises(AssertionError):
        assert_invariants(conn)
