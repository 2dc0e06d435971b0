"""Reversals (0400) and reversal advices (0420/0421), full and partial (spec sections 3-6)."""

from __future__ import annotations

import time

import pytest
from e2e_support import (
    Ledger,
    answered,
    by_stan,
    call,
    due_on_wire,
    read_all,
    receipt,
    writes_blocked,
)

from iso.amounts import amount_field
from iso.dialect import encode_message
from iso.framing import BINARY2, encode_frame
from tests.client import IsoClient, payment, reversal
from tests.ledger.ledger_support import assert_invariants
from tests.switch_process import SwitchProcess


def _paid(atm: IsoClient, ledger: Ledger, amount: int, debt: int, **kw: str):
    account = ledger.account(debt)
    request = payment(account, amount, **kw)
    response = call(atm, request)
    return account, request, receipt(response)


def _kinds(ledger: Ledger, payment_id: int) -> list[tuple[str, int]]:
    journal = ledger.journal(payment_id)
    for _, _, entries in journal:
        assert sum(a for _, a in entries) == 0
    return [(kind, amount) for kind, amount, _ in journal]


@pytest.mark.parametrize("mti", ["0400", "0420"])
def test_full_reversal_restores_the_debt(atm: IsoClient, ledger: Ledger, mti: str) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    assert due_on_wire(atm, account) == 2000
    request = reversal(original, mti=mti)
    response = call(atm, request)
    assert response["t"] == ("0410" if mti == "0400" else "0430")
    for de in ("3", "4", "7", "49", "90"):
        assert response[de] == request[de], de
    assert due_on_wire(atm, account) == 5000
    assert ledger.payment(payment_id).reversed_amount == 3000
    assert _kinds(ledger, payment_id) == [("payment", 3000), ("reversal", 3000)]
    (_, _, entries) = ledger.journal(payment_id)[1]
    assert sorted(entries) == sorted([("ACQ:100001:RECV:944", -3000), ("BIL:UTIL01:PAY:944", 3000)])
    assert ledger.unbalanced() == []


def test_reversing_twice_changes_nothing(atm: IsoClient, ledger: Ledger) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    call(atm, reversal(original))
    call(atm, reversal(original))  # a new 0400, same original
    call(atm, reversal(original, mti="0420"))
    call(atm, reversal(original, mti="0421"))
    call(atm, reversal(original, kept=1000))  # cannot undo a reversal
    assert due_on_wire(atm, account) == 5000
    assert ledger.payment(payment_id).reversed_amount == 3000
    assert _kinds(ledger, payment_id) == [("payment", 3000), ("reversal", 3000)]


def test_partial_reversal(atm: IsoClient, ledger: Ledger) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    request = reversal(original, kept=1000)  # DE 95: only 1000 was finally taken
    response = call(atm, request)
    assert response["95"] == request["95"]
    assert due_on_wire(atm, account) == 5000 - 1000
    assert ledger.payment(payment_id).reversed_amount == 2000
    call(atm, reversal(original, kept=1000))  # the same point again: nothing moves
    assert due_on_wire(atm, account) == 4000
    call(atm, reversal(original))  # then the rest
    assert due_on_wire(atm, account) == 5000
    assert ledger.payment(payment_id).reversed_amount == 3000
    assert _kinds(ledger, payment_id) == [("payment", 3000), ("reversal", 2000), ("reversal", 1000)]


def test_partial_reversal_advice(atm: IsoClient, ledger: Ledger) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 3000)
    call(atm, reversal(original, mti="0420", kept=2500))
    assert due_on_wire(atm, account) == 500
    assert _kinds(ledger, payment_id) == [("payment", 3000), ("reversal", 500)]


def test_partial_reversal_keeping_everything_moves_nothing(atm: IsoClient, ledger: Ledger) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    call(atm, reversal(original, kept=3000))
    call(atm, reversal(original, kept=9999), "13")  # keeps more than it paid: refused
    assert due_on_wire(atm, account) == 2000
    assert _kinds(ledger, payment_id) == [("payment", 3000)]


def test_reversal_restores_debts_newest_first(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(1000, 2000)  # 202601, 202602
    original = payment(account, 2500)  # pays 202601 fully and 1500 of 202602
    call(atm, original)
    call(atm, reversal(original, kept=1500))  # 1000 comes back, to the newest period first
    assert due_on_wire(atm, account, PE="202601") == 0
    assert due_on_wire(atm, account, PE="202602") == 1500
    call(atm, reversal(original))
    assert due_on_wire(atm, account, PE="202601") == 1000
    assert due_on_wire(atm, account, PE="202602") == 2000


def test_reversal_of_an_advice(atm: IsoClient, ledger: Ledger) -> None:
    account, original, payment_id = _paid(atm, ledger, 1200, 2000, mti="0220")
    call(atm, reversal(original))
    assert due_on_wire(atm, account) == 2000
    assert ledger.payment(payment_id).reversed_amount == 1200


@pytest.mark.parametrize("mti", ["0420", "0421"])
def test_reversal_advice_of_an_unknown_original_is_acknowledged(
    atm: IsoClient, ledger: Ledger, mti: str
) -> None:
    account = ledger.account(5000)
    never_sent = payment(account, 100)
    journal = ledger.count("journal")
    request = reversal(never_sent, mti=mti)
    response = call(atm, request)
    assert response["t"] == "0430"
    (row,) = ledger.requests(request["11"], request["7"])  # recorded
    assert (row.mti, row.response_code, row.payment_id) == ("0420", "00", None)
    assert ledger.count("journal") == journal
    assert due_on_wire(atm, account) == 5000


def test_reversal_of_a_payment_of_another_terminal_is_unknown(
    switch: SwitchProcess, ledger: Ledger
) -> None:
    with switch.client("atm") as atm:
        account, original, payment_id = _paid(atm, ledger, 1000, 5000)
        other = dict(original, **{"41": "ATM00002"})
        call(atm, reversal(other), "25")
        assert due_on_wire(atm, account) == 4000
        assert ledger.payment(payment_id).reversed_amount == 0


def test_reversal_of_the_host_link(host: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    original = payment(account, 800, terminal="", acquirer="200002")
    payment_id = receipt(call(host, original))
    request = reversal(original)
    assert "41" not in request
    response = call(host, request)
    assert response["7"] == request["7"]
    assert ledger.payment(payment_id).reversed_amount == 800
    assert ledger.due(account) == 5000


def test_reversal_retransmission_and_repeat(atm: IsoClient, ledger: Ledger) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    request = reversal(original, kept=1000)
    atm.send(request)
    first = atm.recv_raw()
    atm.send(request)
    assert atm.recv_raw() == first
    atm.send(dict(request, t="0401"))
    assert atm.recv_raw() == first
    assert _kinds(ledger, payment_id) == [("payment", 3000), ("reversal", 2000)]
    # Same identity, other content: 94, nothing moves.
    call(atm, dict(request, **{"95": amount_field(0) + "0" * 30}), "94")
    assert due_on_wire(atm, account) == 4000


@pytest.mark.parametrize(("repeat", "answer"), [("0401", "0410"), ("0421", "0430")])
def test_a_reversal_repeat_alone_is_treated_as_the_original(
    atm: IsoClient, ledger: Ledger, repeat: str, answer: str
) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    request = reversal(original, mti=repeat)
    response = answered(request, atm.call(request), "00")
    assert response["t"] == answer
    assert ledger.payment(payment_id).reversed_amount == 3000
    (row,) = ledger.requests(request["11"], request["7"])
    assert row.mti == repeat[:3] + "0"


def test_reversal_with_malformed_original_data(atm: IsoClient, ledger: Ledger) -> None:
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    request = reversal(original)
    del request["90"]
    call(atm, request, "30")
    request = reversal(original)
    request["95"] = "X" * 42
    call(atm, request, "30")
    assert ledger.payment(payment_id).reversed_amount == 0


@pytest.mark.parametrize("mti", ["0400", "0420"])
def test_reversal_in_the_same_group_commit_as_its_payment(
    atm: IsoClient, ledger: Ledger, mti: str
) -> None:
    account = ledger.account(5000)
    holder = payment(ledger.account(5000), 1)
    original = payment(account, 3000)
    request = reversal(original, mti=mti)
    with writes_blocked(ledger):
        atm.send(holder)
        time.sleep(0.5)  # the writer takes the holder and waits on the lock (not an assertion)
        atm.send_raw(b"".join(_frame(r) for r in (original, request)))  # both queue behind it
    responses = by_stan(read_all(atm, 3))
    answered(holder, responses[holder["11"]], "00")
    paid = answered(original, responses[original["11"]], "00")
    answered(request, responses[request["11"]], "00")
    assert ledger.payment(receipt(paid)).reversed_amount == 3000
    assert ledger.due(account) == 5000


def _invariants(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        assert_invariants(conn)


@pytest.mark.parametrize(("mti", "code"), [("0420", "00"), ("0421", "00"), ("0400", "25")])
def test_original_after_its_reversal_is_declined_and_moves_nothing(
    atm: IsoClient, ledger: Ledger, mti: str, code: str
) -> None:
    """Spec section 5: a reversal that overtook its original is recorded; the original,
    arriving later, is declined and moves no money (nor does its advice)."""
    account = ledger.account(5000)
    original = payment(account, 3000)
    call(atm, reversal(original, mti=mti), code)
    journal = ledger.count("journal")
    late = call(atm, original, "05")
    assert "38" not in late
    call(atm, dict(original, t="0220"), "05")
    assert ledger.payments(account) == []
    assert ledger.count("journal") == journal
    assert ledger.due(account) == 5000
    assert due_on_wire(atm, account) == 5000
    atm.send(original)  # a retransmission of the late original gets the same answer
    assert atm.recv()["39"] == "05"
    _invariants(ledger)


@pytest.mark.parametrize("mti", ["0400", "0420"])
def test_reversal_before_its_original_in_one_group_commit(
    atm: IsoClient, ledger: Ledger, mti: str
) -> None:
    account = ledger.account(5000)
    holder = payment(ledger.account(5000), 1)
    original = payment(account, 3000)
    request = reversal(original, mti=mti)
    with writes_blocked(ledger):
        atm.send(holder)
        time.sleep(0.5)  # the writer takes the holder and waits on the lock (not an assertion)
        atm.send_raw(b"".join(_frame(r) for r in (request, original)))  # both queue behind it
    responses = by_stan(read_all(atm, 3))
    answered(holder, responses[holder["11"]], "00")
    answered(request, responses[request["11"]], "00" if mti == "0420" else "25")
    answered(original, responses[original["11"]], "05")
    assert ledger.payments(account) == []
    assert ledger.due(account) == 5000
    _invariants(ledger)


@pytest.mark.parametrize("mti", ["0400", "0420"])
@pytest.mark.parametrize(
    ("field", "value"), [("4", amount_field(1000)), ("4", amount_field(30000)), ("49", "840")]
)
def test_reversal_that_misnames_its_original_is_declined(
    atm: IsoClient, ledger: Ledger, mti: str, field: str, value: str
) -> None:
    """DE 4 and DE 49 must be the original's: a mismatch is 13 and reverses nothing, never
    a full reversal of another amount."""
    account, original, payment_id = _paid(atm, ledger, 3000, 5000)
    request = dict(reversal(original, mti=mti), **{field: value})
    call(atm, request, "13")
    assert ledger.payment(payment_id).reversed_amount == 0
    assert _kinds(ledger, payment_id) == [("payment", 3000)]
    assert due_on_wire(atm, account) == 2000
    call(atm, reversal(original, mti=mti))  # named rightly, it reverses
    assert ledger.payment(payment_id).reversed_amount == 3000
    _invariants(ledger)


def _frame(fields: dict[str, str]) -> bytes:
    return encode_frame(BINARY2, encode_message(fields))
