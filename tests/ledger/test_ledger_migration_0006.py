"""Migration 0006 gives every payment recorded before it its transaction identity row."""

from __future__ import annotations

from sqlalchemy import insert, select

from switch.ledger import schema as s
from switch.ledger.database import make_engine, migrate
from tests.ledger.ledger_support import NOW


def _request(stan: str, mti: str, code: str, payment_id: int | None) -> dict[str, object]:
    return {
        "acquirer_id": "100001",
        "terminal_id": "ATM00001",
        "stan": stan,
        "transmitted": "1122101500",
        "mti": mti,
        "request_hash": "h" + stan + mti,
        "response_code": code,
        "response": "{}",
        "payment_id": payment_id,
        "created_at": NOW,
    }


def test_existing_payments_get_their_identity(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine, "0005")
        requests = [
            _request("000001", "0200", "00", 7),
            _request("000001", "0220", "00", 9),  # an advice paid twice before 0006: oldest kept
            _request("000002", "0200", "13", None),  # declined: nothing
            _request("000003", "0220", "00", 8),
            _request("000003", "0400", "00", 8),  # a reversal is no payment of its own
        ]
        with engine.begin() as conn:
            conn.execute(insert(s.requests), requests)
        migrate(engine)
        t = s.transactions.c
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.stan, t.state, t.payment_id, t.acquirer_id, t.terminal_id).order_by(t.stan)
            ).all()
        assert [tuple(r) for r in rows] == [
            ("000001", "paid", 7, "100001", "ATM00001"),
            ("000003", "paid", 8, "100001", "ATM00001"),
        ]
    finally:
        engine.dispose()
