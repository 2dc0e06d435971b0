"""The one order and the one split that a payer code's DL, its payment's plan and the
ledger share (switch/ledger/payer_split.py)."""

from __future__ import annotations

from iso.bill_data import MAX_FIELD, build_bill_data
from switch.ledger.payer_split import Debt, Part, joined, listing, oldest_first, split

DEBTS = [
    Debt("UTIL01", "1000002", "202611", 250000, 3),
    Debt("TEL01", "5550001", "202611", 8800),
    Debt("UTIL01", "1000002", "202610", 500000, 2),
    Debt("PWR01", "M1", "", 100),
]


def test_oldest_first_by_period_then_biller_account_and_id() -> None:
    assert [d.entry() for d in oldest_first(DEBTS)] == [
        "UTIL01:1000002:500000:202610",
        "TEL01:5550001:8800:202611",
        "UTIL01:1000002:250000:202611",
        "PWR01:M1:100:",
    ]


def test_a_split_is_one_part_per_account_in_the_order_of_its_oldest_debt() -> None:
    assert split(DEBTS, 505000) == [
        Part("UTIL01", "1000002", 500000, 750000),
        Part("TEL01", "5550001", 5000, 8800),
    ]
    assert joined(split(DEBTS, 758900)) == "UTIL01:1000002:750000;TEL01:5550001:8800;PWR01:M1:100"


def test_more_than_owed_goes_to_the_newest_debt_and_nothing_owed_splits_nothing() -> None:
    assert split(DEBTS[:2], 260000)[-1] == Part("UTIL01", "1000002", 251200, 250000)
    assert split([], 100) == []


def test_a_dl_too_long_for_de_48_keeps_whole_oldest_entries() -> None:
    many = [Debt("UTIL01", f"{n:032d}", f"2026{n % 12 + 1:02d}", 10**11, n) for n in range(40)]
    head = {"PC": "P" * 32, "DU": "0" * 12}
    room = MAX_FIELD - len(build_bill_data(head)) - 5
    shown = listing(many, room)
    assert 0 < len(shown) < len(many)
    assert shown == oldest_first(many)[: len(shown)]
    field = build_bill_data({**head, "DL": joined(shown)})
    assert len(field) <= MAX_FIELD
    assert len(field) + len(";" + oldest_first(many)[len(shown)].entry()) > MAX_FIELD
