"""The ledger check against a real (SQLite) database built from the switch's schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert

from loadtest.ledger_check import LedgerFacts, check_ledger
from switch.ledger.schema import accounts, entries, journal, metadata, payments

STARTED = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
RECV, PAY = "ACQ:100001:RECV:944", "BIL:UTIL01:PAY:944"


def make_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'switch.db'}"
    engine = create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(accounts),
            [
                {"code": RECV, "kind": "acquirer_receivable", "owner": "100001", "currency": "944"},
                {"code": PAY, "kind": "biller_payable", "owner": "UTIL01", "currency": "944"},
            ],
        )
    engine.dispose()
    return url


def add_payment(
    url: str,
    pid: int,
    amount: int,
    *,
    reversed_amount: int = 0,
    rrn: str = "",
    terminal: str = "ATM00001",
    at: datetime = STARTED + timedelta(seconds=1),
    credit: int = 0,
) -> None:
    """A payment with one journal row; ``credit`` overrides the credit leg (to unbalance it)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(payments).values(
                id=pid,
                acquirer_id="100001",
                terminal_id=terminal,
                channel="ATM",
                biller_code="UTIL01",
                account="1000001",
                amount=amount,
                fee=0,
                reversed_amount=reversed_amount,
                currency="944",
                advice=False,
                rrn=rrn or f"R{pid}",
                auth_code="123456",
                business_day=date(2026, 11, 21),
                created_at=at,
            )
        )
        jid = conn.execute(
            insert(journal).values(
                kind="payment",
                payment_id=pid,
                acquirer_id="100001",
                amount=amount,
                currency="944",
                business_day=date(2026, 11, 21),
                created_at=at,
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(entries),
            [
                {"journal_id": jid, "account_code": RECV, "amount": amount},
                {"journal_id": jid, "account_code": PAY, "amount": -(credit or amount)},
            ],
        )
    engine.dispose()


def facts(**approved: int) -> LedgerFacts:
    result = LedgerFacts(STARTED, "100001", {f"ATM0000{i}" for i in range(1, 6)})
    result.approved = {int(k[1:]): v for k, v in approved.items()}
    return result


def test_matching_ledger_is_ok(tmp_path: Path) -> None:
    url = make_db(tmp_path)
    add_payment(url, 1, 50)
    add_payment(url, 2, 70, reversed_amount=70)
    add_payment(url, 3, 99, at=STARTED - timedelta(hours=1))  # an earlier run: ignored
    seen = facts(p1=50, p2=70)
    seen.reversed.add(2)
    report = check_ledger(url, seen)
    assert report.ok, report.problems
    assert report.lines() == ["ledger check: OK (2 payments)"]


def test_missing_wrong_and_phantom_payments_fail(tmp_path: Path) -> None:
    url = make_db(tmp_path)
    add_payment(url, 1, 51)  # approved for 50
    add_payment(url, 4, 10)  # never approved to us
    add_payment(url, 5, 10, rrn="IN-DOUBT")  # our request timed out
    seen = facts(p1=50, p2=70)
    seen.in_doubt_rrns.add("IN-DOUBT")
    report = check_ledger(url, seen)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "payment 1 amount 51, approved for 50" in text
    assert "payment 2 approved (RN) but not in the payments table" in text
    assert "payment 4 (RRN R4, amount 10) was never approved to us" in text
    assert len(report.problems) == 3
    assert report.warnings == ["payment 5 (RRN IN-DOUBT) exists; our request timed out"]
    assert report.lines()[0] == "ledger check: FAILED (3 discrepancies)"


def test_unbalanced_journal_and_unexpected_reversal_fail(tmp_path: Path) -> None:
    url = make_db(tmp_path)
    add_payment(url, 1, 50, credit=49)
    add_payment(url, 2, 30, reversed_amount=30)
    report = check_ledger(url, facts(p1=50, p2=30))
    assert any(p.endswith("entries sum to 1, not 0") for p in report.problems)
    assert "payment 2 reversed by 30 with no approved 0400" in report.problems
