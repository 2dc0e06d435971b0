"""Inquiry, payment and advice over real TCP, and what they leave in the ledger (spec 3-6)."""

from __future__ import annotations

import pytest
from e2e_support import (
    BILLER,
    CURRENCY,
    TEST_PAN,
    Ledger,
    answered,
    by_stan,
    call,
    due_on_wire,
    read_all,
    receipt,
)

from iso.bill_data import build_bill_data
from iso.dialect import decode_message
from tests.client import IsoClient, bill_data, inquiry, payment, reversal
from tests.ledger.ledger_support import assert_invariants
from tests.switch_process import SwitchProcess

# -- inquiry ----------------------------------------------------------------


@pytest.mark.parametrize("mti", ["0100", "0200"])
def test_inquiry_of_the_demo_account(atm: IsoClient, mti: str) -> None:
    request = inquiry("1000001", mti=mti)
    response = call(atm, request)
    assert response["t"] == ("0110" if mti == "0100" else "0210")
    assert response["3"] == "310000"
    tags = bill_data(response)
    assert tags["NM"] == "GIL*** P."
    assert tags["DU"] == "000000012345"
    assert (tags["BL"], tags["AC"]) == ("UTIL01", "1000001")
    # DE 54: one 20-character entry, amount type 40 (amount due), D = owed by the payer.
    assert response["54"] == "0040944D000000012345"
    assert len(response["54"]) == 20
    assert response["49"] == CURRENCY
    assert "38" not in response and "4" not in response
    for de in ("7", "12", "13", "37"):
        assert response[de] == request[de]


def test_inquiry_names_are_transliterated_and_masked(atm: IsoClient, ledger: Ledger) -> None:
    # Demo holders: 1000003 "Батбаяр Д.", 1000005 "Əliyeva S."; new ones get "Test Payer".
    names = {"1000003": "BAT*** D.", "1000005": "ALI*** S."}
    for account, masked in names.items():
        assert bill_data(call(atm, inquiry(account)))["NM"] == masked
    for tags in (bill_data(call(atm, inquiry(f"10000{n:02d}"))) for n in range(1, 100)):
        assert tags["NM"].isascii() and tags["NM"].isprintable()
        head, *initials = tags["NM"].split(" ")
        assert len(head) == 6 and head.endswith("***") and head[:3].isupper(), tags["NM"]
        assert all(len(i) == 2 and i[1] == "." for i in initials), tags["NM"]


def test_inquiry_by_period(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(1000, 2000)  # periods 202601, 202602
    assert due_on_wire(atm, account) == 3000
    assert due_on_wire(atm, account, PE="202602") == 2000
    assert due_on_wire(atm, account, PE="202612") == 0


def test_inquiry_moves_no_money(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(1000)
    journal, requests = ledger.count("journal"), ledger.count("requests")
    for _ in range(3):
        call(atm, inquiry(account))
        call(atm, inquiry(account, mti="0100"))
    assert (ledger.count("journal"), ledger.count("requests")) == (journal, requests)
    assert ledger.due(account) == 1000


# -- payment ----------------------------------------------------------------


def test_payment_approved_and_recorded(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(10000)
    request = payment(account, 2500)
    response = call(atm, request)
    assert response["t"] == "0210"
    for de in ("3", "4", "7", "12", "13", "37", "49"):
        assert response[de] == request[de], de
    auth = response["38"]
    assert len(auth) == 6 and auth.isalnum()
    tags = bill_data(response)
    assert tags["DU"] == "000000007500"  # what is still owed after this payment
    payment_id = receipt(response)

    row = ledger.payment(payment_id)
    assert (row.acquirer_id, row.terminal_id, row.channel) == ("100001", "ATM00001", "ATM")
    assert (row.biller_code, row.account) == (BILLER, account)
    assert (row.amount, row.currency) == (2500, CURRENCY)
    assert (row.reversed_amount, row.advice) == (0, False)
    assert row.rrn == request["37"] and row.auth_code == auth
    assert row.masked_pan is None and row.pan_hash is None

    journal = ledger.journal(payment_id)
    assert [(kind, amount) for kind, amount, _ in journal] == [("payment", 2500)]
    for _, _, entries in journal:
        assert sum(amount for _, amount in entries) == 0
    (_, _, entries) = journal[0]
    assert sorted(entries) == sorted(
        [("ACQ:100001:RECV:944", 2500), (f"BIL:{BILLER}:PAY:944", -2500)]
    )
    (req,) = ledger.requests(request["11"], request["7"])
    assert (req.mti, req.response_code, req.payment_id) == ("0200", "00", payment_id)
    assert ledger.unbalanced() == []


def test_payment_reduces_the_debt(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(3000, 4000)
    assert due_on_wire(atm, account) == 7000
    call(atm, payment(account, 3500))  # the older debt first, then part of the newer
    assert due_on_wire(atm, account) == 3500
    assert due_on_wire(atm, account, PE="202601") == 0
    assert due_on_wire(atm, account, PE="202602") == 3500
    last = call(atm, payment(account, 3500))
    assert bill_data(last)["DU"] == "000000000000"
    assert due_on_wire(atm, account) == 0
    call(atm, payment(account, 1), "13")  # nothing left to pay
    assert [p.amount for p in ledger.payments(account)] == [3500, 3500]


def test_payment_of_one_period(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(3000, 4000)
    call(atm, payment(account, 4000, PE="202602"))
    assert due_on_wire(atm, account, PE="202601") == 3000
    assert due_on_wire(atm, account, PE="202602") == 0
    call(atm, payment(account, 3001, PE="202601"), "13")


def test_payment_from_a_pos_terminal(pos: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(900)
    request = payment(account, 900, terminal="POS00001")
    response = call(pos, request)
    assert response["42"] == "AGENT0000000001"
    row = ledger.payment(receipt(response))
    assert (row.terminal_id, row.channel) == ("POS00001", "POS")


@pytest.mark.parametrize("account_type", ["00", "10", "20", "30"])
def test_payment_from_each_account_type(atm: IsoClient, ledger: Ledger, account_type: str) -> None:
    account = ledger.account(100)
    request = payment(account, 100)
    request["3"] = f"50{account_type}00"
    assert call(atm, request)["3"] == request["3"]


def test_no_full_pan_is_stored(switch: SwitchProcess, atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    request = payment(account, 1200)
    request["2"] = TEST_PAN
    request["14"] = "2912"
    request["35"] = f"{TEST_PAN}=29121010000000000000"
    response = call(atm, request)
    assert "2" not in response and "35" not in response
    row = ledger.payment(receipt(response))
    assert row.masked_pan == TEST_PAN[:6] + "******" + TEST_PAN[-4:]
    assert row.pan_hash and TEST_PAN not in row.pan_hash
    # The same card again: the keyed hash finds it, still no PAN anywhere.
    again = dict(payment(account, 300), **{"2": TEST_PAN})
    assert ledger.payment(receipt(call(atm, again))).pan_hash == row.pan_hash
    advice = dict(payment(account, 100, mti="0220"), **{"2": TEST_PAN})
    call(atm, advice)
    call(atm, reversal(request))
    # Eight digits of the PAN that no masked form shows (random values cannot match them).
    hidden = TEST_PAN[5:13]
    assert [(t, c) for t, c, value in ledger.text_values() if hidden in value] == []
    assert hidden not in switch.log_text()


# -- advice -----------------------------------------------------------------


def test_advice_is_recorded(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    request = payment(account, 1500, mti="0220")
    response = call(atm, request)
    assert response["t"] == "0230"
    assert response["38"]
    row = ledger.payment(receipt(response))
    assert (row.advice, row.amount, row.biller_code) == (True, 1500, BILLER)
    assert ledger.due(account) == 3500


def test_advice_above_the_due_amount_is_recorded(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(1000)
    response = call(atm, payment(account, 2500, mti="0220"))
    row = ledger.payment(receipt(response))
    assert row.amount == 2500
    assert ledger.due(account) == 0
    (journal,) = ledger.journal(row.id)
    assert journal[:2] == ("payment", 2500)
    assert sum(a for _, a in journal[2]) == 0
    # Nothing owed at all: recorded anyway, the biller gets it all.
    nothing_due = ledger.account()
    call(atm, payment(nothing_due, 700, mti="0220"))
    assert [p.amount for p in ledger.payments(nothing_due)] == [700]


def test_advice_for_an_unknown_biller_goes_to_suspense(atm: IsoClient, ledger: Ledger) -> None:
    request = payment("SOMEWHERE-1", 4200, biller="NOSUCH", mti="0220")
    response = call(atm, request)
    assert response["t"] == "0230"
    row = ledger.payment(receipt(response))
    assert (row.amount, row.advice, row.biller_code, row.account) == (4200, True, "", "SOMEWHERE-1")
    ((kind, amount, entries),) = ledger.journal(row.id)
    assert (kind, amount) == ("payment", 4200)
    assert sorted(entries) == sorted([("ACQ:100001:RECV:944", 4200), ("SUSPENSE:944", -4200)])
    assert ledger.unbalanced() == []


def test_advice_in_another_currency_goes_to_suspense(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(1000)
    odd = call(atm, payment(account, 100, currency="840", mti="0220"))
    ((_, _, entries),) = ledger.journal(receipt(odd))
    assert sorted(entries) == sorted([("ACQ:100001:RECV:840", 100), ("SUSPENSE:840", -100)])
    assert ledger.due(account) == 1000


def test_advice_for_an_unknown_account_is_recorded(atm: IsoClient, ledger: Ledger) -> None:
    response = call(atm, payment("NOT-AT-BILLER", 800, mti="0220"))
    assert ledger.payment(receipt(response)).account == "NOT-AT-BILLER"


def _invariants(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        assert_invariants(conn)


def test_advice_of_an_approved_payment_is_the_same_transaction(
    atm: IsoClient, ledger: Ledger
) -> None:
    """Spec section 5: same DE 32/41/11/7 and amount as an approved 0200: acknowledged
    with that payment's DE 38 and RN, and no money moves again."""
    account = ledger.account(10000)
    request = payment(account, 1000)
    paid = call(atm, request)
    advice = dict(request, t="0220")
    acknowledged = call(atm, advice)
    assert acknowledged["t"] == "0230"
    assert acknowledged["38"] == paid["38"]
    assert bill_data(acknowledged)["RN"] == bill_data(paid)["RN"]
    assert [p.amount for p in ledger.payments(account)] == [1000]
    assert ledger.due(account) == 9000
    assert len(ledger.journal(receipt(paid))) == 1
    repeat = call(atm, dict(advice, t="0221"))  # the acquirer's repeat of its advice
    assert bill_data(repeat)["RN"] == bill_data(paid)["RN"]
    assert [p.amount for p in ledger.payments(account)] == [1000]
    _invariants(ledger)


def test_advice_of_another_amount_than_its_approved_payment_is_94(
    atm: IsoClient, ledger: Ledger
) -> None:
    account = ledger.account(10000)
    request = payment(account, 1000)
    call(atm, request)
    call(atm, dict(request, t="0220", **{"4": "000000000999"}), "94")
    assert [p.amount for p in ledger.payments(account)] == [1000]
    assert ledger.due(account) == 9000
    _invariants(ledger)


def test_advice_of_a_declined_payment_is_recorded(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(1000)
    request = payment(account, 1500)
    call(atm, request, "13")  # above the due amount
    recorded = call(atm, dict(request, t="0220"))  # the acquirer took the money anyway
    row = ledger.payment(receipt(recorded))
    assert (row.amount, row.advice) == (1500, True)
    assert ledger.due(account) == 0
    _invariants(ledger)


# -- retransmission and repeats ----------------------------------------------


def test_exact_retransmission_gets_the_same_response(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(10000)
    request = payment(account, 1000)
    atm.send(request)
    first = atm.recv_raw()
    for _ in range(3):
        atm.send(request)
        assert atm.recv_raw() == first
    # A repeat (0201) of the same request is the same request.
    atm.send(dict(request, t="0201"))
    assert atm.recv_raw() == first
    assert [p.amount for p in ledger.payments(account)] == [1000]
    assert ledger.due(account) == 9000
    assert len(ledger.journal(receipt(decode_message(first)))) == 1


def test_retransmission_of_a_declined_payment(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(1000)
    request = payment(account, 1500)
    atm.send(request)
    first = atm.recv_raw()
    assert decode_message(first)["39"] == "13"
    atm.send(request)
    assert atm.recv_raw() == first
    assert ledger.payments(account) == []


def test_retransmission_while_the_original_is_in_flight(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(10000)
    request = payment(account, 1000)
    atm.send_raw(b"".join(_frames(atm, [request] * 5)))
    raws = [atm.recv_raw() for _ in range(5)]
    assert len(set(raws)) == 1
    assert decode_message(raws[0])["39"] == "00"
    assert [p.amount for p in ledger.payments(account)] == [1000]
    assert ledger.due(account) == 9000


def test_retransmission_of_an_advice(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(10000)
    request = payment(account, 1000, mti="0220")
    atm.send(request)
    first = atm.recv_raw()
    atm.send(dict(request, t="0221"))
    assert atm.recv_raw() == first
    assert [p.amount for p in ledger.payments(account)] == [1000]


@pytest.mark.parametrize(("repeat", "answer"), [("0201", "0210"), ("0221", "0230")])
def test_a_repeat_alone_is_treated_as_the_original(
    atm: IsoClient, ledger: Ledger, repeat: str, answer: str
) -> None:
    account = ledger.account(10000)
    request = payment(account, 1000, mti=repeat)
    response = answered(request, atm.call(request), "00")
    assert response["t"] == answer
    row = ledger.payment(receipt(response))
    assert (row.amount, row.advice) == (1000, repeat == "0221")
    (req,) = ledger.requests(request["11"], request["7"])
    assert req.mti == repeat[:3] + "0"
    # The original MTI after its repeat is a retransmission.
    again = answered(request, atm.call(dict(request, t=repeat[:3] + "0")), "00")
    assert receipt(again) == row.id


def test_payments_on_the_same_account_from_many_requests(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(100000)
    requests = [payment(account, 100 + i) for i in range(20)]
    atm.send_raw(b"".join(_frames(atm, requests)))
    responses = by_stan(read_all(atm, len(requests)))
    for request in requests:
        answered(request, responses[request["11"]], "00")
    assert ledger.due(account) == 100000 - sum(100 + i for i in range(20))
    assert len({receipt(r) for r in responses.values()}) == 20
    assert ledger.unbalanced() == []


def test_unknown_bill_data_tags_are_ignored(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(100)
    request = payment(account, 100)
    request["48"] = build_bill_data(
        {"XX": "unknown tags are ignored", "AC": account, "BL": BILLER, "PH": "+99450000000"}
    )
    call(atm, request)
    assert ledger.due(account) == 0


def _frames(client: IsoClient, requests: list[dict[str, str]]) -> list[bytes]:
    from iso.dialect import encode_message
    from iso.framing import encode_frame

    return [encode_frame(client.prefix, encode_message(r), client.tpdu) for r in requests]


def test_two_payments_racing_for_the_same_debt(switch: SwitchProcess, ledger: Ledger) -> None:
    account = ledger.account(5000)
    with switch.client("atm") as one, switch.client("pos") as two:
        first = payment(account, 5000)
        second = payment(account, 5000, terminal="POS00001")
        one.send(first)
        two.send(second)
        codes = sorted([one.recv()["39"], two.recv()["39"]])
    assert codes == ["00", "13"]  # the debt can be paid once
    assert [p.amount for p in ledger.payments(account)] == [5000]
    assert ledger.due(account) == 0


def test_payments_in_one_batch_see_each_other(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    requests = [payment(account, 2000) for _ in range(4)]  # only two fit the due amount
    atm.send_raw(b"".join(_frames(atm, requests)))
    responses = by_stan(read_all(atm, 4))
    codes = sorted(responses[r["11"]]["39"] for r in requests)
    assert codes == ["00", "00", "13", "13"]
    assert ledger.due(account) == 1000
    dues = sorted(bill_data(r)["DU"] for r in responses.values() if r["39"] == "00")
    assert dues == ["000000001000", "000000003000"]
