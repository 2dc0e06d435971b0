"""The online adapter against a correct biller over real HTTP: signed requests, every
operation's answer, and each of the API's error codes as its BillerError and code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from routing.billers import (
    AccountClosed,
    AmountNotAccepted,
    BillerError,
    Conflict,
    InDoubt,
    Refused,
    Unavailable,
    UnknownAccount,
)
from routing.bills import Bill
from tests.hsm.hsm_support import ReactorThread
from tests.routing.conftest import Served
from tests.routing.online_support import Online, make_online, payment


@pytest.fixture
def online(reactor_thread: ReactorThread, broken: Served) -> Iterator[Online]:
    made = make_online(reactor_thread, broken)
    yield made
    reactor_thread.call(made.adapter.close)


def test_online_adapter_is_remote() -> None:
    from routing.adapters.online import OnlineAdapter

    assert (OnlineAdapter.kind, OnlineAdapter.remote) == ("online", True)


def test_fetch_bill_returns_the_bill_and_none_for_an_unknown_account(online: Online) -> None:
    bill = online.call("fetch_bill", "TEL01", "5550001", None)
    assert bill == Bill("GILMAN P", 8800, (("202611", 8800),), "INV-7822")
    assert online.call("fetch_bill", "TEL01", "5550003", "202611") == Bill("PAID UP", 0, ())
    assert online.call("fetch_bill", "TEL01", "9999999", None) is None


def test_pay_returns_the_acceptance_and_repeats_are_the_same_answer(online: Online) -> None:
    p = payment()
    accepted = online.call("pay", "TEL01", p)
    assert accepted.biller_ref.startswith("REF")
    assert accepted.receipt and accepted.receipt.startswith("VAT")
    assert accepted.token is not None and len(accepted.token) == 20
    assert online.call("pay", "TEL01", p) == accepted  # the idempotency key at work
    assert online.served.biller.payments[p.payment_id]["request"]["invoice"] == "INV-7822"


def test_status_and_reversal_of_a_payment(online: Online) -> None:
    p = payment(invoice=None)
    accepted = online.call("pay", "TEL01", p)
    held = online.call("status", "TEL01", p.payment_id)  # a GET: signs the empty body
    assert (held.status, held.account, held.amount, held.biller_ref) == (
        "accepted",
        p.account,
        p.amount,
        accepted.biller_ref,
    )
    assert online.call("reverse", "TEL01", p.payment_id) is None
    assert online.call("status", "TEL01", p.payment_id).status == "reversed"
    assert online.call("reverse", "TEL01", p.payment_id) is None  # idempotent


def test_status_and_reversal_of_an_unknown_payment(online: Online) -> None:
    assert online.call("status", "TEL01", "P-never/../sent") is None
    assert online.call("reverse", "TEL01", "P-never-sent") is None  # 404: nothing to reverse


@pytest.mark.parametrize(
    ("make", "error", "code"),
    [
        (lambda: payment(account="9999999"), UnknownAccount, "14"),
        (lambda: payment(amount=0), AmountNotAccepted, "13"),
    ],
)
def test_pay_declines_of_a_correct_biller(online: Online, make, error, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as raised:
        online.call("pay", "TEL01", make())
    assert raised.value.code == code and not raised.value.moved


def test_pay_same_id_other_content_is_a_conflict(online: Online) -> None:
    p = payment()
    online.call("pay", "TEL01", p)
    with pytest.raises(Conflict):
        online.call("pay", "TEL01", payment(payment_id=p.payment_id, amount=1))


@pytest.mark.parametrize(
    ("error_code", "error", "code"),
    [
        ("unknown_account", UnknownAccount, "14"),
        ("amount_not_accepted", AmountNotAccepted, "13"),
        ("account_closed", AccountClosed, "05"),
        ("conflict", Conflict, "05"),
        ("bad_signature", Refused, "05"),  # the biller refused our request (401)
        ("teapot", Refused, "05"),  # any other 4xx
    ],
)
def test_each_4xx_error_code_is_its_error(
    online: Online, error_code: str, error: type[BillerError], code: str
) -> None:
    online.served.biller.behave("ERR", f"error:{error_code}")
    with pytest.raises(error) as raised:
        online.call("pay", "ERR", payment())
    assert type(raised.value) is error and raised.value.code == code
    assert not raised.value.moved


def test_under_a_wrong_secret_nothing_is_paid_and_nothing_trusted(
    reactor_thread: ReactorThread, broken: Served
) -> None:
    """The biller checks our signature and refuses (401); its refusal is signed under
    its secret, not ours, so we cannot trust it either: in doubt, and nothing paid."""
    online = make_online(reactor_thread, broken, secret=b"not the biller's")
    with pytest.raises(InDoubt):
        online.call("pay", "TEL01", payment())
    assert broken.biller.requests["TEL01"] == 1
    assert broken.biller.payments == {}
    reactor_thread.call(online.adapter.close)


def test_fetch_declines_other_than_unknown_account(online: Online) -> None:
    online.served.biller.behave("CLOSED", "error:account_closed")
    with pytest.raises(AccountClosed):
        online.call("fetch_bill", "CLOSED", "5550001", None)


def test_a_biller_without_endpoint_is_unavailable(online: Online) -> None:
    with pytest.raises(Unavailable):
        online.call("pay", "NOSUCH", payment())
    with pytest.raises(Unavailable):
        online.call("fetch_bill", "NOSUCH", "5550001", None)


def test_connections_are_reused_between_calls(online: Online) -> None:
    for _ in range(5):
        online.call("fetch_bill", "TEL01", "5550001", None)
    assert online.served.biller.connections_made == 1


def test_an_unusable_endpoint_is_unavailable(reactor_thread: ReactorThread) -> None:
    from routing.adapters.online import OnlineAdapter
    from routing.billers import Endpoint

    bad = Endpoint("http://bïller.example/TEL01", b"s")
    adapter = OnlineAdapter(reactor_thread.reactor, lambda code: bad)
    with pytest.raises(Unavailable):
        reactor_thread.call(adapter.pay, "TEL01", payment())


def test_a_payment_answered_as_reversed_is_no_acceptance_and_no_doubt() -> None:
    """The reference biller answers a payment id it has reversed with ``status: reversed``:
    the biller holds it and will not take it again under that id. That is a refusal
    (05, an outbox row parked for an operator), not a doubt retried for ever."""
    from routing.adapters.online_answers import accepted
    from routing.biller_http import Answer
    from routing.billers import ReversedThere

    with pytest.raises(ReversedThere) as raised:
        accepted(Answer(200, b'{"status": "reversed", "biller_ref": "R1"}', True))
    assert (raised.value.code, raised.value.moved) == ("05", False)
    with pytest.raises(InDoubt):
        accepted(Answer(200, b'{"status": "pending", "biller_ref": "R1"}', True))
