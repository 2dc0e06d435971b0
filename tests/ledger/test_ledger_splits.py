"""Payments by payer code in the ledger (issue 12): one order, split oldest debt first.

The split is one transaction: a head payment (the acquirer's: its request, identity
and journal rows) and one part per account paid (the biller's: allocations, online
facts); one reversal undoes the whole split, newest debts first when partial. Online
parts post only with their settle rows pending and unclaimed, else the split is 05
and their settle rows are due at once. On both backends.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from routing.billers import Accepted
from switch.ledger import accounts as acc
from switch.ledger import online, outbox, queries
from switch.ledger import schema as s
from switch.ledger.fees import BILLER, FeeRule, FeeRules
from switch.ledger.online import Intent
from switch.ledger.orders import RequestKey
from switch.ledger.postings import record_batch
from switch.ledger.reference import Biller
from switch.ledger.splits import OnlinePart, SplitAnswerOrder, SplitPaymentOrder
from tests.ledger.ledger_support import (
    ACQ,
    ATM,
    CUR,
    DAY,
    FEE_INCOME,
    HASHER,
    NOW,
    RECV,
    TEST_FEES,
    TRANSMITTED,
    assert_invariants,
    billers,
    debt_open,
    journal_rows,
    next_stan,
    payable,
    payment,
    record_one,
    respond,
    reversal,
)

PC = "PC9000001"
ONL = "ONL01"
_p, _a, _o = s.payments.c, s.allocations.c, s.outbox.c


def split_order(
    held: list[tuple[Biller, str]],
    amount: int,
    online_parts: tuple[OnlinePart, ...] = (),
    online_due: int = 0,
    stan: str | None = None,
    fees: FeeRules = TEST_FEES,
) -> SplitPaymentOrder:
    stan = stan or next_stan()
    fields = {
        "t": "0200",
        "3": "500000",
        "4": f"{amount:012d}",
        "7": TRANSMITTED,
        "11": stan,
        "32": ACQ,
        "41": ATM,
        "48": f"PC{len(PC):03d}{PC}",
        "49": CUR,
    }
    return SplitPaymentOrder(
        key=RequestKey(ACQ, ATM, stan, TRANSMITTED, "0200"),
        request_hash=HASHER.request("0200", fields),
        respond=respond,
        business_day=DAY,
        payer_code=PC,
        held=tuple(held),
        online=online_parts,
        online_due=online_due,
        amount=amount,
        currency=CUR,
        channel="ATM",
        rrn=f"R{stan}",
        fees=fees,
    )


def _undo(order: SplitPaymentOrder, kept: int = 0, advice: bool = False):  # type: ignore[no-untyped-def]
    return reversal(order.key, kept, amount=order.amount, currency=CUR, advice=advice)


def _parts(ledger: Engine, head: int) -> list[tuple[str, str, int, int]]:
    with ledger.connect() as conn:
        query = (
            select(_p.biller_code, _p.account, _p.amount, _p.reversed_amount)
            .where(_p.split_of == head, _p.id != head)
            .order_by(_p.id)
        )
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


def _allocated(ledger: Engine, head: int) -> list[tuple[str, str, str, int]]:
    d = s.debts.c
    with ledger.connect() as conn:
        query = (
            select(d.biller_code, d.account, d.period, _a.amount)
            .select_from(s.allocations.join(s.debts, d.id == _a.debt_id))
            .join(s.payments, _p.id == _a.payment_id)
            .where(_p.split_of == head)
            .order_by(d.period, d.biller_code, d.account)
        )
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


def _check(ledger: Engine) -> None:
    with ledger.connect() as conn:
        assert_invariants(conn)


@pytest.fixture
def held(ledger: Engine) -> list[tuple[Biller, str]]:
    """UTIL01 1000002 (500000 for 202610, 250000 for 202611), UTIL01 1000001 (12345 for
    202611), FEE01 F1 (10000 for 202611, fee 150)."""
    b = billers(ledger)
    return [(b["UTIL01"], "1000002"), (b["UTIL01"], "1000001"), (b["FEE01"], "F1")]


def test_a_split_pays_oldest_first_across_billers(ledger: Engine, held) -> None:  # type: ignore[no-untyped-def]
    order = split_order(held, 515000)
    recorded = record_one(ledger, order)
    assert recorded.code == "00"
    head = int(recorded.response["payment_id"])
    # 202610 first; then 202611 by biller code and account: FEE01 F1, UTIL01 1000001.
    assert _parts(ledger, head) == [
        ("UTIL01", "1000002", 500000, 0),
        ("FEE01", "F1", 10000, 0),
        ("UTIL01", "1000001", 5000, 0),
    ]
    assert _allocated(ledger, head) == [
        ("UTIL01", "1000002", "202610", 500000),
        ("FEE01", "F1", "202611", 10000),
        ("UTIL01", "1000001", "202611", 5000),
    ]
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000002", "202610") == 0
        assert debt_open(conn, "UTIL01", "1000002", "202611") == 250000
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 7345
        assert journal_rows(conn, head) == [("payment", 515000), ("fee", 150)]
        row = conn.execute(select(s.payments).where(_p.id == head)).one()
    assert (row.biller_code, row.account, row.amount, row.fee) == ("", PC, 515000, 150)
    assert recorded.response["due"] == str(12345 + 750000 + 10000 - 515000)
    _check(ledger)


def test_paying_the_total_clears_every_debt(ledger: Engine, held) -> None:  # type: ignore[no-untyped-def]
    recorded = record_one(ledger, split_order(held, 772345))
    assert (recorded.code, recorded.response["due"]) == ("00", "0")
    with ledger.connect() as conn:
        for account, period in (
            ("1000002", "202610"),
            ("1000002", "202611"),
            ("1000001", "202611"),
        ):
            assert debt_open(conn, "UTIL01", account, period) == 0
        assert debt_open(conn, "FEE01", "F1", "202611") == 0
    _check(ledger)


@pytest.mark.parametrize("amount", [772346, 2_000_000])
def test_more_than_owed_is_13_when_a_biller_forbids_overpayment(
    ledger: Engine, held, amount: int
) -> None:  # type: ignore[no-untyped-def]
    assert record_one(ledger, split_order(held, amount)).code == "13"
    with ledger.connect() as conn:
        assert conn.execute(select(s.payments)).first() is None
    _check(ledger)


def test_overpayment_goes_to_the_newest_debt_when_every_biller_allows_it(ledger: Engine) -> None:
    over = billers(ledger)["OVER01"]
    recorded = record_one(ledger, split_order([(over, "O1")], 3500))
    assert (recorded.code, recorded.response["due"]) == ("00", "0")
    head = int(recorded.response["payment_id"])
    assert _parts(ledger, head) == [("OVER01", "O1", 3500, 0)]
    assert _allocated(ledger, head) == [("OVER01", "O1", "202611", 3000)]
    _check(ledger)


def test_a_part_against_its_billers_rules_declines_the_split(ledger: Engine) -> None:
    b = billers(ledger)
    # FULL01 takes the exact amount only; 4000 of its 5000 would be a partial payment.
    order = split_order([(b["FULL01"], "U1"), (b["UTIL01"], "1000001")], 4000)
    assert record_one(ledger, order).code == "13"
    _check(ledger)


def test_one_reversal_undoes_the_whole_split(ledger: Engine, held) -> None:  # type: ignore[no-untyped-def]
    order = split_order(held, 515000)
    totals = _totals(ledger)
    head = int(record_one(ledger, order).response["payment_id"])
    paid = _totals(ledger)
    # The acquirer's 0500 sees one payment of DE 4 (and its fee): the head's rows only.
    assert (paid.payments - totals.payments, paid.payment_amount - totals.payment_amount) == (
        1,
        515000,
    )
    assert paid.fees - totals.fees == 150
    assert _balances(ledger).get(acc.split_clearing(CUR), 0) == 0
    before = _balances(ledger)
    assert record_one(ledger, _undo(order)).code == "00"
    undone = _totals(ledger)
    assert (undone.reversals - paid.reversals, undone.reversal_amount - paid.reversal_amount) == (
        1,
        515000,
    )
    assert _balances(ledger).get(acc.split_clearing(CUR), 0) == 0
    assert [r[3] for r in _parts(ledger, head)] == [500000, 10000, 5000]
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000002", "202610") == 500000
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 12345
        assert debt_open(conn, "FEE01", "F1", "202611") == 10000
        kinds = [k for k, _ in journal_rows(conn, head)]
    assert kinds == ["payment", "fee", "reversal", "fee_reversal"]
    after = _balances(ledger)
    assert after[RECV] - before[RECV] == -515150
    assert after[payable("UTIL01")] - before[payable("UTIL01")] == 505000
    assert after[payable("FEE01")] - before[payable("FEE01")] == 10000
    assert after[FEE_INCOME] - before[FEE_INCOME] == 150
    # Reversing again changes nothing.
    assert record_one(ledger, _undo(order)).code == "00"
    _check(ledger)


def test_a_partial_reversal_takes_the_newest_debts_back_first(ledger: Engine, held) -> None:  # type: ignore[no-untyped-def]
    order = split_order(held, 515000)
    head = int(record_one(ledger, order).response["payment_id"])
    assert record_one(ledger, _undo(order, kept=503000, advice=True)).code == "00"
    # 12000 back: UTIL01 1000001's 5000, FEE01's 10000 less 3000 kept.
    assert [r[3] for r in _parts(ledger, head)] == [0, 7000, 5000]
    with ledger.connect() as conn:
        assert debt_open(conn, "UTIL01", "1000001", "202611") == 12345
        assert debt_open(conn, "FEE01", "F1", "202611") == 7000
    _check(ledger)


def test_a_retransmission_is_answered_from_the_first(ledger: Engine, held) -> None:  # type: ignore[no-untyped-def]
    order = split_order(held, 1000)
    first = record_one(ledger, order)
    again = record_one(ledger, split_order(held, 1000, stan=order.key.stan))
    assert again.replay and again.response == first.response
    _check(ledger)


def test_in_one_batch_as_in_arrival_order(ledger: Engine, held) -> None:  # type: ignore[no-untyped-def]
    """A payment of one of the split's accounts after it, and a reversal of the split
    followed by another payment: each sees what came before it."""
    util = billers(ledger)["UTIL01"]
    split = split_order(held, 500000)
    after = payment(util, "1000002", 250000)
    undo = _undo(split)
    again = payment(util, "1000002", 500000)
    with ledger.begin() as conn:
        answers = record_batch(conn, [split, after, undo, again], NOW, clock_day=DAY)
    assert [a.code for a in answers] == ["00", "00", "00", "00"]
    assert answers[1].response["due"] == "0"  # the split paid 202610, this one 202611
    assert answers[3].response["due"] == "0"  # the reversal reopened 202610
    _check(ledger)


def test_each_part_is_priced_as_its_own_payment_and_a_billers_fee_comes_back_with_it(
    ledger: Engine, held
) -> None:  # type: ignore[no-untyped-def]
    """Fees of a split: FEE01's (150, the payer's) on the head, in DE 28's total; UTIL01's
    1 % paid by the biller on each UTIL01 part, out of its payable; a reversal of the
    whole split gives every fee back."""
    fees = FeeRules(
        [FeeRule(1, "FEE01", None, None, fixed=150), FeeRule(2, "UTIL01", None, None,
         percent_bp=100, payer=BILLER)]
    )  # fmt: skip
    order = split_order(held, 515000, fees=fees)
    before = _balances(ledger)
    recorded = record_one(ledger, order)
    assert (recorded.code, recorded.response["fee"]) == ("00", "150")
    head = int(recorded.response["payment_id"])
    with ledger.connect() as conn:
        rows = conn.execute(
            select(_p.biller_code, _p.amount, _p.fee, _p.fee_payer)
            .where(_p.split_of == head, _p.id != head)
            .order_by(_p.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("UTIL01", 500000, 5000, "biller"),
        ("FEE01", 10000, 0, "payer"),
        ("UTIL01", 5000, 50, "biller"),
    ]
    paid = _balances(ledger)
    assert paid[payable("UTIL01")] - before.get(payable("UTIL01"), 0) == -505000 + 5050
    assert paid[FEE_INCOME] - before.get(FEE_INCOME, 0) == -(150 + 5050)
    _check(ledger)
    assert record_one(ledger, _undo(order)).code == "00"
    undone = _balances(ledger)
    for account in (payable("UTIL01"), payable("FEE01"), FEE_INCOME, RECV):
        assert undone.get(account, 0) == before.get(account, 0), account
    _check(ledger)


# -- online parts --------------------------------------------------------------


@pytest.fixture
def onl(ledger: Engine) -> Biller:
    with ledger.begin() as conn:
        conn.execute(
            insert(s.billers).values(
                code=ONL, name="Phone", kind="online", currency=CUR, min_amount=1,
                max_amount=None, partial_allowed=True, overpay_allowed=False, fee_fixed=0,
                settlement_account=None, status="active",
            )
        )  # fmt: skip
    return billers(ledger)[ONL]


def _online(biller: Biller, pid: str, amount: int, due: int, period: str) -> OnlinePart:
    return OnlinePart(biller, "5550001", amount, due, period, pid, Accepted("REF-" + pid, "VAT"))


def _arm(ledger: Engine, *pids: str) -> None:
    with ledger.begin() as conn:
        online.arm(conn, [Intent(ONL, pid, 15) for pid in pids], NOW)


def _settle(ledger: Engine) -> dict[str, tuple[str, object]]:
    with ledger.connect() as conn:
        query = select(_o.payment_id, _o.state, _o.next_at).where(_o.action == outbox.SETTLE)
        return {pid: (state, at) for pid, state, at in conn.execute(query)}


def test_an_online_part_posts_with_its_settle_row_removed(ledger: Engine, held, onl) -> None:  # type: ignore[no-untyped-def]
    part = _online(onl, "X-1", 8800, 8800, "202609")
    _arm(ledger, "X-1")
    recorded = record_one(ledger, split_order(held[:1], 108800, (part,), online_due=8800))
    assert recorded.code == "00"
    head = int(recorded.response["payment_id"])
    assert _parts(ledger, head) == [("ONL01", "5550001", 8800, 0), ("UTIL01", "1000002", 100000, 0)]
    with ledger.connect() as conn:
        row = conn.execute(select(s.payments).where(_p.biller_payment_id == "X-1")).one()
    assert (row.biller_ref, row.receipt, row.split_of) == ("REF-X-1", "VAT", head)
    assert _settle(ledger) == {}
    _check(ledger)


def test_an_online_part_without_its_settle_row_declines_the_split(
    ledger: Engine, held, onl
) -> None:  # type: ignore[no-untyped-def]
    part = _online(onl, "X-2", 8800, 8800, "202609")
    _arm(ledger, "X-2")
    with ledger.begin() as conn:  # a delivery holds it
        later = NOW + timedelta(seconds=60)
        conn.execute(update(s.outbox).where(_o.payment_id == "X-2").values(claimed_until=later))
    assert record_one(ledger, split_order(held[:1], 108800, (part,), 8800)).code == "05"
    with ledger.connect() as conn:
        assert conn.execute(select(s.payments)).first() is None
        assert debt_open(conn, "UTIL01", "1000002", "202610") == 500000
    state, _ = _settle(ledger)["X-2"]
    assert state == outbox.PENDING
    _check(ledger)


def test_a_held_part_declined_makes_the_online_parts_due_at_once(ledger: Engine, held, onl) -> None:  # type: ignore[no-untyped-def]
    part = _online(onl, "X-3", 8800, 8800, "202609")
    _arm(ledger, "X-3")
    # 900000 leaves 891200 for UTIL01 1000002, which owes 750000 and forbids overpayment.
    assert record_one(ledger, split_order(held[:1], 900000, (part,), 8800)).code == "13"
    state, at = _settle(ledger)["X-3"]
    assert state == outbox.PENDING
    assert (at if at.tzinfo else at.replace(tzinfo=NOW.tzinfo)) <= NOW
    _check(ledger)


def test_a_reversal_of_a_split_tells_the_online_biller(ledger: Engine, held, onl) -> None:  # type: ignore[no-untyped-def]
    part = _online(onl, "X-4", 8800, 8800, "202609")
    _arm(ledger, "X-4")
    order = split_order(held[:1], 108800, (part,), 8800)
    assert record_one(ledger, order).code == "00"
    assert record_one(ledger, _undo(order, kept=5000)).code == "12"  # partial at the biller
    assert record_one(ledger, _undo(order)).code == "00"
    with ledger.connect() as conn:
        query = select(_o.state).where(_o.action == outbox.REVERSE, _o.payment_id == "X-4")
        assert conn.execute(query).scalar_one() == outbox.PENDING
    _check(ledger)


def test_a_declined_split_with_money_at_a_biller_is_recorded(ledger: Engine, held, onl) -> None:  # type: ignore[no-untyped-def]
    _arm(ledger, "X-5")
    order = split_order(held[:1], 1000)
    answer = SplitAnswerOrder(
        key=order.key,
        request_hash=order.request_hash,
        respond=respond,
        business_day=DAY,
        code="05",
        settle_now=(Intent(ONL, "X-5", 0),),
    )
    assert record_one(ledger, answer).code == "05"
    assert record_one(ledger, order).response == {"39": "05"}  # the stored answer
    state, at = _settle(ledger)["X-5"]
    assert (at if at.tzinfo else at.replace(tzinfo=NOW.tzinfo)) <= NOW
    _check(ledger)


def _totals(ledger: Engine) -> queries.Totals:
    with ledger.connect() as conn:
        return queries.acquirer_totals(conn, ACQ, DAY)


def _balances(ledger: Engine) -> dict[str, int]:
    with ledger.connect() as conn:
        return queries.balances(conn)
