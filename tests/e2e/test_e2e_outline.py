"""Outline billers over real TCP (issue 11): any account, any amount within the biller's
limits, the money on the biller's payable account; billers added and changed with
``billswitch billers`` while the switch runs are served without a restart.

Demo biller MOB01: outline, currency 944, min 100, max 5000000.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from e2e_support import Ledger, backend_url, call, receipt, sign_on_all, started
from sqlalchemy import func, select

from switch.cli import main
from switch.ledger import accounts as acc
from switch.ledger import schema as s
from tests.client import IsoClient, bill_data, inquiry, payment, reversal
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

REFRESH = "reference_refresh = 0.3  # seconds: billers changed by the CLI are seen quickly\n"
WAIT = 60.0  # seconds: bound of every wait for the switch to see a change
MOB = "MOB01"
RECEIVABLE = acc.acquirer_receivable("100001", "944")


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SwitchProcess]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("outline")
    for url in backend_url(request.param, home):
        with started(home, url, top_config=REFRESH) as proc:
            sign_on_all(proc)
            yield proc


def _payable_balance(ledger: Ledger, biller: str) -> int:
    """What the network owes ``biller`` (its payable account, credits positive)."""
    e = s.entries.c
    code = acc.biller_payable(biller, "944")
    with ledger.engine.connect() as conn:
        total = conn.execute(select(func.sum(e.amount)).where(e.account_code == code)).scalar()
    return -(total or 0)


def _allocations(ledger: Ledger, payment_id: int) -> int:
    a = s.allocations.c
    with ledger.engine.connect() as conn:
        query = select(func.count()).where(a.payment_id == payment_id)
        return conn.execute(query).scalar_one()


@pytest.mark.parametrize("account", ["994501234567", "anything-at-all", "0"])
def test_inquiry_answers_00_with_no_amount_due(atm: IsoClient, account: str) -> None:
    response = call(atm, inquiry(account, biller=MOB))
    assert bill_data(response) == {"BL": MOB, "AC": account}  # no NM, no DU
    assert "54" not in response
    assert response["49"] == "944"


def test_payment_of_any_account_goes_to_the_payable_account(atm: IsoClient, ledger: Ledger) -> None:
    before = _payable_balance(ledger, MOB)
    for account, amount in (("994501234567", 100), ("994509999999", 5_000_000)):
        response = call(atm, payment(account, amount, biller=MOB))
        tags = bill_data(response)
        assert set(tags) == {"BL", "AC", "RN"}  # a receipt, and no amount due
        assert len(response["38"]) == 6
        payment_id = receipt(response)
        row = ledger.payment(payment_id)
        assert (row.biller_code, row.account, row.amount) == (MOB, account, amount)
        legs = [(RECEIVABLE, amount), (acc.biller_payable(MOB, "944"), -amount)]
        assert ledger.journal(payment_id) == [("payment", amount, legs)]
        assert _allocations(ledger, payment_id) == 0
    assert _payable_balance(ledger, MOB) == before + 100 + 5_000_000


@pytest.mark.parametrize("amount", [99, 5_000_001])
def test_amount_outside_the_limits_is_13_and_moves_nothing(
    atm: IsoClient, ledger: Ledger, amount: int
) -> None:
    journal = ledger.count("journal")
    response = call(atm, payment("994501234567", amount, biller=MOB), code="13")
    assert "38" not in response
    assert ledger.count("journal") == journal


def test_reversal_of_an_outline_payment(atm: IsoClient, ledger: Ledger) -> None:
    before = _payable_balance(ledger, MOB)
    original = payment("994500000001", 2500, biller=MOB)
    payment_id = receipt(call(atm, original))
    call(atm, reversal(original))
    payable = acc.biller_payable(MOB, "944")
    assert ledger.journal(payment_id) == [
        ("payment", 2500, [(RECEIVABLE, 2500), (payable, -2500)]),
        ("reversal", 2500, [(RECEIVABLE, -2500), (payable, 2500)]),
    ]
    assert ledger.payment(payment_id).reversed_amount == 2500
    assert _payable_balance(ledger, MOB) == before


def test_partial_reversal_of_an_outline_payment(atm: IsoClient, ledger: Ledger) -> None:
    original = payment("994500000002", 3000, biller=MOB)
    payment_id = receipt(call(atm, original))
    call(atm, reversal(original, kept=1000))
    assert ledger.payment(payment_id).reversed_amount == 2000


def test_advice_of_an_outline_payment(atm: IsoClient, ledger: Ledger) -> None:
    response = call(atm, payment("994500000003", 700, biller=MOB, mti="0220"))
    assert set(bill_data(response)) == {"BL", "AC", "RN"}
    assert ledger.payment(receipt(response)).advice


def _until(check, what: str):  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it is true (the reference refresh is periodic)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"the switch never saw {what}")


def _billers(switch: SwitchProcess, *args: str) -> None:
    home = ["--home", str(switch.home), "--db", switch.db_url]
    assert main(["billers", *args, *home]) == 0


def test_a_biller_added_and_changed_by_the_cli_is_served_without_a_restart(
    switch: SwitchProcess, atm: IsoClient, ledger: Ledger
) -> None:
    code = "TOPUP2"
    call(atm, inquiry("77001", biller=code), code="92")
    _billers(
        switch, "add", code, "--name", "Top-up Two", "--kind", "outline",
        "--currency", "944", "--min", "500", "--max", "9000",
    )  # fmt: skip
    _until(lambda: atm.call(inquiry("77001", biller=code))["39"] == "00", "the new biller")
    payment_id = receipt(call(atm, payment("77001", 9000, biller=code)))
    legs = [(RECEIVABLE, 9000), (acc.biller_payable(code, "944"), -9000)]
    assert ledger.journal(payment_id) == [("payment", 9000, legs)]
    call(atm, payment("77001", 499, biller=code), code="13")

    _billers(switch, "set", code, "--max", "20000")
    _until(lambda: atm.call(payment("77001", 15000, biller=code))["39"] == "00", "the new max")
    _billers(switch, "set", code, "--inactive")
    _until(lambda: atm.call(inquiry("77001", biller=code))["39"] == "92", "the biller closed")
