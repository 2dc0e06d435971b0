"""Every response code of the host interface this switch answers, over real TCP (spec section 5).

Each test uses its own accounts and STANs; the module shares one switch per backend.
"""

from __future__ import annotations

import iso8583
import pytest
from e2e_support import TEST_PAN, Ledger, answered, call, receipt

from iso.bill_data import build_bill_data
from iso.dialect import SPEC
from iso.framing import BINARY2, encode_frame
from tests.client import (
    IsoClient,
    bill_data,
    inquiry,
    network,
    payment,
    reversal,
)
from tests.switch_process import SwitchProcess

# -- 00 --------------------------------------------------------------------


def test_00_inquiry_and_payment(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    call(atm, inquiry(account))
    response = call(atm, payment(account, 2000))
    assert ledger.payment(receipt(response)).amount == 2000


# -- 03 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terminal", "acquirer"),
    [("ATM09999", "100001"), ("ATM00001", "999999"), ("ATM00001", "200002")],
    ids=["unknown-terminal", "unknown-acquirer", "terminal-of-another-acquirer"],
)
def test_03_unknown_terminal_or_acquirer(
    atm: IsoClient, ledger: Ledger, terminal: str, acquirer: str
) -> None:
    account = ledger.account(5000)
    call(atm, network("001", terminal, acquirer), "03")
    call(atm, inquiry(account, terminal=terminal, acquirer=acquirer), "03")
    call(atm, payment(account, 100, terminal=terminal, acquirer=acquirer), "03")
    assert ledger.payments(account) == []


def test_03_terminal_of_another_channel(switch: SwitchProcess, ledger: Ledger) -> None:
    account = ledger.account(5000)
    with switch.client("atm") as atm, switch.client("host") as host, switch.client("pos") as pos:
        # POS00001 is signed on, but it is a POS terminal: not on the ATM channel.
        call(atm, inquiry(account, terminal="POS00001"), "03")
        call(atm, payment(account, 100, terminal="POS00001"), "03")
        call(pos, payment(account, 100, terminal="ATM00001"), "03")
        # A terminal on the host channel; the host link on a terminal channel.
        call(host, payment(account, 100, terminal="ATM00001"), "03")
        call(atm, network("001", terminal="", acquirer="200002"), "30")  # DE 41 is mandatory
    assert ledger.payments(account) == []


def test_03_not_signed_on(switch: SwitchProcess, ledger: Ledger) -> None:
    account = ledger.account(5000)
    with switch.client("atm") as atm:
        # ATM00004 exists but never signed on to this switch.
        call(atm, inquiry(account, terminal="ATM00004"), "03")
        call(atm, payment(account, 100, terminal="ATM00004"), "03")
        call(atm, payment(account, 100, terminal="ATM00004", mti="0220"), "03")
    assert ledger.payments(account) == []
    assert ledger.due(account) == 5000


# -- 12 --------------------------------------------------------------------


def test_12_unsupported_message_type(atm: IsoClient) -> None:
    for mti, answer in (("0300", "0310"), ("0600", "0610"), ("0120", "0130")):
        request = {**network("301"), "t": mti}
        del request["70"]
        assert call(atm, request, "12")["t"] == answer


def test_12_unsupported_processing_code(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    request = payment(account, 100)
    request["3"] = "400000"  # a transfer: not a bill payment network operation
    call(atm, request, "12")
    advice_inquiry = payment(account, 100, mti="0220")
    advice_inquiry["3"] = "310000"  # an advice of an inquiry makes no sense
    call(atm, advice_inquiry, "12")
    odd_account_type = payment(account, 100)
    odd_account_type["3"] = "509900"
    call(atm, odd_account_type, "12")
    assert ledger.payments(account) == []


def test_12_unsupported_network_management_code(atm: IsoClient) -> None:
    call(atm, network("999"), "12")


# -- 13 --------------------------------------------------------------------


def test_13_zero_amount(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    call(atm, payment(account, 0), "13")
    call(atm, payment(account, 0, mti="0220"), "13")
    assert ledger.payments(account) == []


def test_13_wrong_currency(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    call(atm, payment(account, 100, currency="840"), "13")
    assert ledger.payments(account) == []
    assert ledger.due(account) == 5000


def test_13_above_due_without_overpayment(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    call(atm, payment(account, 5001), "13")
    nothing_due = ledger.account()
    call(atm, payment(nothing_due, 1), "13")
    assert ledger.payments(account) == [] and ledger.payments(nothing_due) == []
    assert ledger.due(account) == 5000
    call(atm, payment(account, 5000))  # exactly the due amount is fine
    assert ledger.due(account) == 0


# -- 14 --------------------------------------------------------------------


def test_14_unknown_account(atm: IsoClient, ledger: Ledger) -> None:
    before = ledger.count("payments")
    call(atm, inquiry("UNKNOWN-77"), "14")
    call(atm, inquiry("UNKNOWN-77", mti="0100"), "14")
    call(atm, payment("UNKNOWN-77", 100), "14")
    assert ledger.count("payments") == before


# -- 25 --------------------------------------------------------------------


def test_25_reversal_of_unknown_original(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    never_sent = payment(account, 100)
    before = ledger.count("journal")
    call(atm, reversal(never_sent), "25")
    call(atm, reversal(never_sent, kept=40), "25")
    assert ledger.count("journal") == before
    assert ledger.due(account) == 5000


def test_25_reversal_of_a_declined_payment(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    declined = payment(account, 9000)
    call(atm, declined, "13")
    call(atm, reversal(declined), "25")
    assert ledger.due(account) == 5000


# -- 30 --------------------------------------------------------------------


def test_30_missing_bill_data(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    for request in (inquiry(account), inquiry(account, mti="0100"), payment(account, 100)):
        del request["48"]
        call(atm, request, "30")
    assert ledger.payments(account) == []


def test_30_missing_amount(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    for mti in ("0200", "0220"):
        request = payment(account, 100, mti=mti)
        del request["4"]
        call(atm, request, "30")
    assert ledger.payments(account) == []


@pytest.mark.parametrize("de", ["3", "7", "11", "32", "41", "49"])
def test_30_missing_identity_or_currency(atm: IsoClient, ledger: Ledger, de: str) -> None:
    account = ledger.account(5000)
    request = payment(account, 100)
    del request[de]
    response = atm.call(request)
    assert response["39"] == "30", response
    assert response["t"] == "0210"
    assert de not in response
    assert ledger.payments(account) == []


@pytest.mark.parametrize(
    "de48",
    [
        "BL006UTIL01AC9",  # value shorter than its length
        "BL006UTIL01AC0x71000003",  # length not digits
        "B1006UTIL01",  # tag not letters
        "BL006UTIL01A",  # truncated header
        "BL006UTIL01",  # no account
        "AC0071000003",  # no biller
    ],
)
def test_30_malformed_bill_data(atm: IsoClient, ledger: Ledger, de48: str) -> None:
    account = ledger.account(5000)
    for request in (inquiry(account), payment(account, 100)):
        request["48"] = de48
        call(atm, request, "30")
    assert ledger.payments(account) == []


def _raw(fields: dict[str, str]) -> bytes:
    """Encode with pyiso8583 directly: it lets through what the switch must refuse."""
    raw, _ = iso8583.encode({k: v for k, v in fields.items() if k not in ("p", "1")}, SPEC)
    return bytes(raw)


def test_30_undecodable_field_echoes_what_was_read(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    request = payment(account, 100)
    request["4"] = "0000000001A0"  # letters in a numeric field
    atm.send_raw(encode_frame(BINARY2, _raw(request)))
    response = atm.recv()
    assert response["39"] == "30", response
    assert response["t"] == "0210"
    for de in ("7", "11", "32", "41"):
        assert response[de] == request[de], de
    assert "4" not in response  # the bad value is not echoed
    # The connection is still usable.
    call(atm, inquiry(account))
    assert ledger.payments(account) == []


def test_30_bad_variable_length_echoes_the_fields_before_it(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    request = payment(account, 100)
    request["37"] = "RRN000000001"
    raw = _raw(request)
    assert raw.count(b"06100001") == 1
    raw = raw.replace(b"06100001", b"0A100001")  # DE 32 length is not digits
    atm.send_raw(encode_frame(BINARY2, raw))
    response = atm.recv()
    assert response["39"] == "30", response
    assert response["t"] == "0210"
    assert (response["7"], response["11"]) == (request["7"], request["11"])
    assert "32" not in response and "41" not in response
    call(atm, inquiry(account))
    assert ledger.payments(account) == []


# -- 92 --------------------------------------------------------------------


def test_92_unknown_biller(atm: IsoClient, ledger: Ledger) -> None:
    before = ledger.count("payments")
    call(atm, inquiry("1000003", biller="NOSUCH"), "92")
    call(atm, inquiry("1000003", biller="NOSUCH", mti="0100"), "92")
    call(atm, payment("1000003", 100, biller="NOSUCH"), "92")
    assert ledger.count("payments") == before


# -- 94 --------------------------------------------------------------------


def test_94_same_identity_different_content(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    first = payment(account, 1000)
    paid = call(atm, first)
    # Content is MTI, DE 3, 4, 49, 48, 2 (DE 37 etc. are not: test_e2e_repeats.py).
    for change in ({"4": "000000002000"}, {"48": build_bill_data({"BL": "UTIL01", "AC": account,
                                                                  "PE": "202601"})},
                   {"3": "502000"}, {"2": TEST_PAN}):  # fmt: skip
        other = dict(first, **change)
        response = call(atm, other, "94")
        assert "38" not in response and "RN" not in bill_data(response)
    # The original is still the one on record: a retransmission gets its response.
    again = call(atm, first)
    assert receipt(again) == receipt(paid)
    assert [p.amount for p in ledger.payments(account)] == [1000]
    assert ledger.due(account) == 4000


def test_94_also_for_a_repeat_with_different_content(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    first = payment(account, 1000)
    call(atm, first)
    repeat = dict(first, t="0201", **{"4": "000000001001"})
    answered(repeat, atm.call(repeat), "94")
    assert [p.amount for p in ledger.payments(account)] == [1000]


# -- network management ----------------------------------------------------


def test_sign_on_echo_sign_off(switch: SwitchProcess, ledger: Ledger) -> None:
    account = ledger.account(5000)
    terminal = "ATM00005"
    with switch.client("atm") as atm:
        call(atm, payment(account, 100, terminal=terminal), "03")
        echo = call(atm, network("301", terminal))  # an echo needs no sign-on
        assert echo["t"] == "0810" and echo["70"] == "301"
        signed = call(atm, network("001", terminal))
        assert signed["70"] == "001" and signed["7"]
        call(atm, inquiry(account, terminal=terminal))
        call(atm, payment(account, 100, terminal=terminal))
        call(atm, network("301", terminal))
        call(atm, network("002", terminal))
        call(atm, inquiry(account, terminal=terminal), "03")
        call(atm, payment(account, 100, terminal=terminal), "03")
        call(atm, payment(account, 100, terminal=terminal, mti="0220"), "03")
        call(atm, network("301", terminal))
        call(atm, network("001", terminal))
        call(atm, payment(account, 100, terminal=terminal))
    assert [p.amount for p in ledger.payments(account)] == [100, 100]
    assert ledger.due(account) == 4800


def test_sign_on_is_per_terminal(switch: SwitchProcess, ledger: Ledger) -> None:
    account = ledger.account(5000)
    with switch.client("atm") as atm:
        call(atm, network("001", "ATM00003"))
        call(atm, network("002", "ATM00003"))
        call(atm, payment(account, 100, terminal="ATM00003"), "03")
        call(atm, payment(account, 100))  # ATM00001 is still signed on


def test_host_link_sign_on_and_payment(host: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    request = payment(account, 700, terminal="", acquirer="200002")
    response = call(host, request)
    assert "41" not in response
    assert response["7"] == request["7"]
    row = ledger.payment(receipt(response))
    assert (row.acquirer_id, row.terminal_id, row.channel) == ("200002", "", "HOST")
    call(host, network("002", terminal="", acquirer="200002"))
    call(host, payment(account, 1, terminal="", acquirer="200002"), "03")
    call(host, network("001", terminal="", acquirer="200002"))


def test_unsolicited_response_gets_no_answer(atm: IsoClient) -> None:
    stray = network("001")
    stray["t"] = "0810"
    stray["39"] = "00"
    atm.send(stray)
    # The next answer on this connection is the echo's, not one for the 0810.
    echo = network("301")
    answered(echo, atm.call(echo), "00")


@pytest.mark.parametrize(
    ("tag", "value"),
    [("AC", "1" * 33), ("BL", "UTIL01XYZ"), ("BL", "UTIL-1")],
    ids=["account-over-32", "biller-over-8", "biller-not-alphanumeric"],
)
def test_30_bill_data_outside_the_spec(
    atm: IsoClient, ledger: Ledger, tag: str, value: str
) -> None:
    # DE 48: BL is an..8, AC is ans..32 (spec section 4).
    account = ledger.account(5000)
    tags = {"BL": "UTIL01", "AC": account, tag: value}
    journal = ledger.count("journal")
    for mti in ("0100", "0200"):
        request = inquiry(account, mti=mti)
        request["48"] = build_bill_data(tags)
        call(atm, request, "30")
    for mti in ("0200", "0220"):
        request = payment(account, 100, mti=mti)
        request["48"] = build_bill_data(tags)
        call(atm, request, "30")
    assert ledger.count("journal") == journal


@pytest.mark.parametrize("code", ["500010", "310030", "500001"])
def test_12_processing_code_outside_the_spec(atm: IsoClient, ledger: Ledger, code: str) -> None:
    # DE 3 is 31xx00 or 50xx00: nothing but zeros after the from-account type.
    account = ledger.account(5000)
    request = payment(account, 100) if code.startswith("50") else inquiry(account)
    request["3"] = code
    call(atm, request, "12")
    assert ledger.payments(account) == []
