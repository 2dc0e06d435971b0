"""Online billers in the ledger (issue 11): the settle row is the intent.

A payment the biller accepted is posted with the biller's answer and its settle row
goes in the same transaction; one whose settle row is claimed by a delivery, done or
missing is declined 05 and its row armed again (the ledger never posts what a
settlement may undo); a 68 is stored as the request's answer; advices and reversals
of online payments enqueue their outbox rows with the posting; a partial reversal is
12 (0400) or parked for an operator (0420).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from routing.billers import Accepted, PaymentRequest
from switch import demo
from switch.ledger import online, outbox
from switch.ledger import schema as s
from switch.ledger.online import AnswerOrder, Intent, OnlinePaymentOrder
from switch.ledger.postings import record_batch
from switch.ledger.reference import Biller
from tests.ledger.ledger_support import (
    CUR,
    HASHER,
    NOW,
    add_online_biller,
    assert_invariants,
    billers,
    payment,
    reversal,
)

ONL = "ONL01"
_o = s.outbox.c


@pytest.fixture
def biller(ledger: Engine) -> Biller:
    return add_online_biller(ledger)


def _paid(biller: Biller, account: str, amount: int, pid: str, **kw: object) -> OnlinePaymentOrder:
    order = payment(biller, account, amount, cls=OnlinePaymentOrder, **kw)  # type: ignore[arg-type]
    accepted = Accepted("REF-" + pid, receipt="VAT-" + pid, token=None)
    return replace(order, biller_payment_id=pid, accepted=accepted)


def _arm(ledger: Engine, *pids: str) -> None:
    with ledger.begin() as conn:
        online.arm(conn, [Intent(ONL, pid, 15) for pid in pids], NOW)


def _rows(ledger: Engine, action: str) -> dict[str, tuple[str, int]]:
    with ledger.connect() as conn:
        query = select(_o.payment_id, _o.state, _o.attempts).where(_o.action == action)
        return {pid: (state, n) for pid, state, n in conn.execute(query)}


def test_an_accepted_payment_is_posted_and_its_intent_removed(
    ledger: Engine, biller: Biller
) -> None:
    _arm(ledger, "P-1", "P-2")
    with ledger.begin() as conn:
        (answer,) = record_batch(conn, [_paid(biller, "555", 2500, "P-1")], NOW)
    assert answer.code == "00"
    with ledger.connect() as conn:
        row = conn.execute(
            select(s.payments).where(s.payments.c.id == int(answer.response["payment_id"]))
        ).one()
        assert (row.biller_payment_id, row.biller_ref, row.receipt, row.token) == (
            "P-1", "REF-P-1", "VAT-P-1", None,
        )  # fmt: skip
        assert_invariants(conn)
    assert _rows(ledger, "settle") == {"P-2": ("pending", 0)}


@pytest.mark.parametrize("how", ["claimed", "done", "missing"])
def test_a_payment_whose_settlement_may_be_under_way_is_not_posted(
    ledger: Engine, biller: Biller, how: str
) -> None:
    if how != "missing":
        _arm(ledger, "P-9")
        values = (
            {"claimed_until": NOW + timedelta(seconds=30), "attempts": 1}
            if how == "claimed"
            else {"state": "done", "attempts": 1}
        )
        with ledger.begin() as conn:
            conn.execute(update(s.outbox).where(_o.payment_id == "P-9").values(**values))
    with ledger.begin() as conn:
        (answer,) = record_batch(conn, [_paid(biller, "555", 2500, "P-9")], NOW)
    assert answer.code == "05"
    with ledger.connect() as conn:
        assert conn.execute(select(s.payments)).all() == []
    state, attempts = _rows(ledger, "settle")["P-9"]
    assert state == "pending" and attempts == (0 if how == "missing" else 2)


def test_a_payment_the_ledger_declines_keeps_its_intent_as_it_was(
    ledger: Engine, biller: Biller
) -> None:
    """The biller accepted an on-us card payment the card's wallet cannot cover (51): the
    settle row, taken when the batch began, is put back unchanged (due when it was), so
    it reverses the biller's copy; the other payment of the batch is posted."""
    _arm(ledger, "P-6", "P-7")
    with ledger.begin() as conn:
        demo.load_demo_card(conn, HASHER.pan(demo.DEMO_CARD_PAN))
    with ledger.connect() as conn:
        wallet = conn.execute(select(s.cards.c.wallet_account)).scalar_one()
        before = conn.execute(select(s.outbox).where(_o.payment_id == "P-6")).one()
    broke = replace(_paid(biller, "555", 2_000_000, "P-6"), wallet=wallet)
    with ledger.begin() as conn:
        answers = record_batch(conn, [broke, _paid(biller, "556", 100, "P-7")], NOW)
    assert [a.code for a in answers] == ["51", "00"]
    with ledger.connect() as conn:
        after = conn.execute(select(s.outbox).where(_o.payment_id == "P-6")).one()
        assert_invariants(conn)
    assert {**after._asdict(), "id": 0} == {**before._asdict(), "id": 0}
    assert _rows(ledger, "settle") == {"P-6": ("pending", 0)}


def test_arming_again_revives_a_settled_row(ledger: Engine, biller: Biller) -> None:
    _arm(ledger, "P-3")
    with ledger.begin() as conn:
        conn.execute(update(s.outbox).values(state="done", attempts=3))
    _arm(ledger, "P-3")
    assert _rows(ledger, "settle") == {"P-3": ("pending", 4)}
    with ledger.begin() as conn:
        online.drop(conn, ["P-3"])
    assert _rows(ledger, "settle") == {}


def test_a_68_is_the_stored_answer(ledger: Engine, biller: Biller) -> None:
    paid = _paid(biller, "555", 2500, "P-4")
    in_doubt = AnswerOrder(paid.key, paid.request_hash, paid.respond, paid.business_day, "68")
    with ledger.begin() as conn:
        assert record_batch(conn, [in_doubt], NOW)[0].code == "68"
    _arm(ledger, "P-4")
    with ledger.begin() as conn:  # the biller accepted a repeat: the stored 68 stands
        (answer,) = record_batch(conn, [paid], NOW)
    assert (answer.code, answer.replay) == ("68", True)
    assert _rows(ledger, "settle") == {"P-4": ("pending", 0)}  # it settles the biller's copy


def test_an_advice_enqueues_its_delivery(ledger: Engine, biller: Biller) -> None:
    advice = payment(biller, "555", 700, advice=True, cls=OnlinePaymentOrder)
    request = PaymentRequest("P-5", "555", 700, CUR, NOW, "ATM")
    advice = replace(advice, biller_payment_id="P-5", request=request)
    with ledger.begin() as conn:
        assert record_batch(conn, [advice], NOW)[0].code == "00"
        body = conn.execute(select(_o.body).where(_o.action == "pay")).scalar_one()
    assert outbox.payment_request(body) == request


def test_reversals_tell_the_biller_and_partial_ones_wait_for_an_operator(
    ledger: Engine, biller: Biller
) -> None:
    _arm(ledger, "P-6", "P-7", "P-8")
    full, partial, refused = (_paid(biller, "555", 2500, pid) for pid in ("P-6", "P-7", "P-8"))
    with ledger.begin() as conn:
        assert [a.code for a in record_batch(conn, [full, partial, refused], NOW)] == ["00"] * 3
    orders = [reversal(full), reversal(partial, 1000, advice=True), reversal(refused, 1000)]
    with ledger.begin() as conn:
        assert [a.code for a in record_batch(conn, orders, NOW)] == ["00", "00", "12"]
        assert_invariants(conn)
    assert _rows(ledger, "reverse") == {"P-6": ("pending", 0), "P-7": ("parked", 0)}
    with ledger.connect() as conn:
        reason = conn.execute(select(_o.last_error).where(_o.payment_id == "P-7")).scalar_one()
    assert reason == online.PARTIAL


def test_held_billers_reversals_enqueue_nothing(ledger: Engine) -> None:
    util = billers(ledger)["UTIL01"]
    paid = payment(util, "1000001", 1000)
    with ledger.begin() as conn:
        record_batch(conn, [paid], NOW)
        record_batch(conn, [reversal(paid)], NOW)
        assert conn.execute(select(s.outbox)).all() == []
