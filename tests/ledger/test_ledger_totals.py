"""Reconciliation totals, the open-debt query, business days and their roll-over."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import Engine, select

from switch.business_day import business_day, next_cutover, roll_over
from switch.ledger import queries
from switch.ledger import schema as s
from switch.ledger.queries import Totals
from tests.ledger.ledger_support import (
    DAY,
    HOST_ACQ,
    NEXT_DAY,
    RECV,
    assert_invariants,
    billers,
    payment,
    record_one,
    reversal,
)


def test_acquirer_totals_per_business_day(ledger: Engine) -> None:
    b = billers(ledger)
    util_payment = payment(b["UTIL01"], "1000002", 1000)
    fee_payment = payment(b["FEE01"], "F1", 4000)
    orders = [
        util_payment,
        fee_payment,
        payment(None, "X", 50, advice=True),
        payment(b["UTIL01"], "1000001", 99999),  # declined: not in the totals
        payment(b["UTIL01"], "1000002", 7, acquirer=HOST_ACQ, terminal=""),  # another acquirer
        reversal(fee_payment),  # full, with its fee, the same day
        reversal(util_payment, kept=400, day=NEXT_DAY),  # partial, the next day
    ]
    assert [record_one(ledger, o).code for o in orders] == ["00"] * 3 + ["13"] + ["00"] * 3

    with ledger.connect() as conn:
        today = queries.acquirer_totals(conn, "100001", DAY)
        tomorrow = queries.acquirer_totals(conn, "100001", NEXT_DAY)
        host = queries.acquirer_totals(conn, HOST_ACQ, DAY)
        assert today == Totals(
            payments=3, payment_amount=5050, reversals=1, reversal_amount=4000, fees=0
        )
        assert today.net == 1050
        assert tomorrow == Totals(reversals=1, reversal_amount=600)
        assert tomorrow.net == -600
        assert host == Totals(payments=1, payment_amount=7)
        assert queries.acquirer_totals(conn, "100001", DAY + timedelta(days=5)) == Totals()
        # what the acquirer owes is the sum of its days' net totals
        assert queries.balances(conn)[RECV] == today.net + tomorrow.net
        assert_invariants(conn)


def test_fees_count_in_the_totals(ledger: Engine) -> None:
    fee_biller = billers(ledger)["FEE01"]
    for _ in range(3):
        assert record_one(ledger, payment(fee_biller, "F1", 100)).code == "00"
    with ledger.connect() as conn:
        totals = queries.acquirer_totals(conn, "100001", DAY)
        assert totals == Totals(payments=3, payment_amount=300, fees=450)
        assert totals.net == 750 == queries.balances(conn)[RECV]


def test_bill_query_reads_open_debts_oldest_first(ledger: Engine) -> None:
    with ledger.connect() as conn:
        bill = queries.bill(conn, "UTIL01", "1000002", None)
        assert bill is not None
        assert bill.amount_due == 750000
        assert bill.debts == (("202610", 500000), ("202611", 250000))
        assert queries.bill(conn, "UTIL01", "1000002", "202611").amount_due == 250000
        assert queries.bill(conn, "UTIL01", "1000003", None).amount_due == 0
        assert queries.bill(conn, "UTIL01", "no-such", None) is None
    assert record_one(ledger, payment(billers(ledger)["UTIL01"], "1000002", 500000)).code == "00"
    with ledger.connect() as conn:
        assert queries.bill(conn, "UTIL01", "1000002", None).debts == (("202611", 250000),)


# ---------------------------------------------------------------- business days

CUTOVER = time(23, 0)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (datetime(2026, 11, 22, 22, 59, 59, tzinfo=UTC), "UTC", date(2026, 11, 22)),
        (datetime(2026, 11, 22, 23, 0, 0, tzinfo=UTC), "UTC", date(2026, 11, 23)),
        (datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC), "UTC", date(2026, 11, 23)),
        (datetime(2026, 11, 23, 0, 0, 0, tzinfo=UTC), "UTC", date(2026, 11, 23)),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "UTC", date(2027, 1, 1)),
        # Baku is UTC+4 all year: the cut-over is 19:00 UTC
        (datetime(2026, 11, 22, 18, 59, 59, tzinfo=UTC), "Asia/Baku", date(2026, 11, 22)),
        (datetime(2026, 11, 22, 19, 0, 0, tzinfo=UTC), "Asia/Baku", date(2026, 11, 23)),
        # 21:30 UTC is already 01:30 on the 23rd in Baku: before that day's cut-over
        (datetime(2026, 11, 22, 21, 30, tzinfo=UTC), "Asia/Baku", date(2026, 11, 23)),
        # Ulaanbaatar, UTC+8: 15:00 UTC is the cut-over
        (datetime(2026, 11, 22, 14, 59, tzinfo=UTC), "Asia/Ulaanbaatar", date(2026, 11, 22)),
        (datetime(2026, 11, 22, 15, 0, tzinfo=UTC), "Asia/Ulaanbaatar", date(2026, 11, 23)),
        # Berlin: 23:00 is 22:00 UTC in winter, 21:00 UTC in summer (DST starts 2026-03-29)
        (datetime(2026, 1, 10, 21, 59, tzinfo=UTC), "Europe/Berlin", date(2026, 1, 10)),
        (datetime(2026, 1, 10, 22, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 1, 11)),
        (datetime(2026, 3, 29, 20, 59, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 29)),
        (datetime(2026, 3, 29, 21, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 30)),
        (datetime(2026, 3, 28, 21, 30, tzinfo=UTC), "Europe/Berlin", date(2026, 3, 28)),
    ],
)
def test_business_day_around_the_cutover(moment: datetime, zone: str, expected: date) -> None:
    assert business_day(moment, CUTOVER, zone) == expected


def test_business_day_depends_on_the_instant_not_the_offset_it_is_written_in() -> None:
    instant = datetime(2026, 11, 22, 19, 30, tzinfo=UTC)
    for hours in (-10, -5, 0, 3, 4, 9, 14):
        written = instant.astimezone(timezone(timedelta(hours=hours)))
        assert business_day(written, CUTOVER, "Asia/Baku") == date(2026, 11, 23)
        assert business_day(written, CUTOVER, "UTC") == date(2026, 11, 22)


def test_early_cutover() -> None:
    cutover = time(18, 0)
    assert business_day(datetime(2026, 11, 22, 17, 59, tzinfo=UTC), cutover) == date(2026, 11, 22)
    assert business_day(datetime(2026, 11, 22, 18, 0, tzinfo=UTC), cutover) == date(2026, 11, 23)
    assert business_day(datetime(2026, 11, 23, 1, 0, tzinfo=UTC), cutover) == date(2026, 11, 23)


def test_midnight_cutover_means_calendar_days() -> None:
    midnight = time(0, 0)
    for moment in (
        datetime(2026, 11, 22, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC),
    ):
        assert business_day(moment, midnight) == date(2026, 11, 22)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Baku", "Europe/Berlin"])
def test_next_cutover_starts_the_next_business_day(zone: str) -> None:
    moment = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    for _ in range(4):
        cut = next_cutover(moment, CUTOVER, zone)
        assert cut > moment
        assert cut - moment <= timedelta(hours=25)
        before = cut - timedelta(microseconds=1)
        assert business_day(cut, CUTOVER, zone) == business_day(before, CUTOVER, zone) + timedelta(
            days=1
        )
        assert next_cutover(before, CUTOVER, zone) == cut
        moment = cut


def test_roll_over_opens_today_and_closes_earlier_days(ledger: Engine) -> None:
    now = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    d = s.business_days.c
    with ledger.begin() as conn:
        assert roll_over(conn, DAY, now) == []
        assert roll_over(conn, DAY, now) == []  # again: nothing changes
    with ledger.begin() as conn:
        assert roll_over(conn, NEXT_DAY, now) == [DAY]
    with ledger.connect() as conn:
        rows = {
            r.day: (r.state, r.closed_at is not None) for r in conn.execute(select(s.business_days))
        }
        assert rows == {DAY: ("closed", True), NEXT_DAY: ("open", False)}
        assert conn.execute(select(d.day).where(d.state == "open")).scalars().all() == [NEXT_DAY]
