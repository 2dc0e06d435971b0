"""Fees and amount rules over real TCP (issue 12), on SQLite and PostgreSQL: rules added
with ``billswitch fees`` while the switch runs are served without a restart; the most
specific rule prices a payment; a payer's fee is in DE 28 of the 0210/0230 and owed by
the acquirer, a biller's is taken from its payable; both land on the fee income; a
full reversal reverses the fee; a biller's amount rules answer 13.

The rules of this module (added by the ``rules`` fixture, in this order):

1. MOB01, any channel, any acquirer: 10 fixed, paid by the payer
2. MOB01 at POS: 1 %, paid by the biller
3. any biller at POS: 7 fixed, paid by the payer
4. UTIL01 through acquirer 100001: 25 fixed, paid by the payer
and UTIL01 made exact only (``billers set UTIL01 --exact``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import Ledger, backend_url, call, receipt, sign_on_all, started
from sqlalchemy import func, select

from switch.cli import main
from switch.ledger import accounts as acc
from switch.ledger import schema as s
from tests.client import IsoClient, bill_data, inquiry, payment, reversal
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

REFRESH = "reference_refresh = 0.3  # seconds: rules added by the CLI are seen quickly\n"
WAIT = 60.0  # seconds: bound of the wait for the switch to see the rules
MOB, UTIL = "MOB01", "UTIL01"
RECV = acc.acquirer_receivable("100001", "944")
HOST_RECV = acc.acquirer_receivable("200002", "944")
FEES = acc.fee_income("944")
MOB_PAY = acc.biller_payable(MOB, "944")
NO_FEE = "D00000000"


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SwitchProcess]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("fees")
    for url in backend_url(request.param, home):
        with started(home, url, top_config=REFRESH) as proc:
            sign_on_all(proc)
            yield proc


def _cli(switch: SwitchProcess, *args: str) -> None:
    assert main([*args, "--home", str(switch.home), "--db", switch.db_url]) == 0


@pytest.fixture(scope="module")
def rules(switch: SwitchProcess) -> None:
    """The module's rules, added through the CLI; then the wait until the switch prices
    with them (the last one added shows in an inquiry's DE 28: the snapshot that has it
    has the others, read before it)."""
    _cli(switch, "fees", "add", "--biller", MOB, "--fixed", "10")
    _cli(switch, "fees", "add", "--biller", MOB, "--channel", "POS", "--percent", "1",
         "--paid-by", "biller")  # fmt: skip
    _cli(switch, "fees", "add", "--channel", "POS", "--fixed", "7")
    _cli(switch, "billers", "set", UTIL, "--exact")
    _cli(switch, "fees", "add", "--biller", UTIL, "--acquirer", "100001", "--fixed", "25")
    deadline = time.monotonic() + WAIT
    with switch.client("atm") as atm:
        while atm.call(inquiry("1000001")).get("28") != "D00000025":
            assert time.monotonic() < deadline, "the switch never served the new fee rules"
            time.sleep(0.1)


@pytest.fixture
def atm(switch: SwitchProcess, rules: None) -> Iterator[IsoClient]:
    with switch.client("atm") as client:
        yield client


@pytest.fixture
def pos(switch: SwitchProcess, rules: None) -> Iterator[IsoClient]:
    with switch.client("pos") as client:
        yield client


@pytest.fixture
def host(switch: SwitchProcess, rules: None) -> Iterator[IsoClient]:
    with switch.client("host") as client:
        yield client


def _balance(ledger: Ledger, account: str) -> int:
    e = s.entries.c
    with ledger.engine.connect() as conn:
        query = select(func.sum(e.amount)).where(e.account_code == account)
        return int(conn.execute(query).scalar() or 0)


def _fee_owner(ledger: Ledger, payment_id: int) -> Any:
    """The acquirer the payment's fee row names (None: the biller paid it)."""
    j = s.journal.c
    with ledger.engine.connect() as conn:
        query = select(j.acquirer_id).where(j.payment_id == payment_id, j.kind == "fee")
        return conn.execute(query).scalar_one()


def test_inquiry_shows_what_paying_the_amount_due_costs_on_top(atm: IsoClient) -> None:
    response = call(atm, inquiry("1000001"))
    assert bill_data(response)["DU"] == "000000012345"
    assert response["28"] == "D00000025"
    assert "28" not in call(atm, inquiry("994500000001", biller=MOB))  # no amount due


def test_a_payers_fee_is_in_de28_and_owed_by_the_acquirer(atm: IsoClient, ledger: Ledger) -> None:
    income = _balance(ledger, FEES)
    request = payment("994500000001", 1000, biller=MOB)
    response = call(atm, request)
    assert response["28"] == "D00000010"
    payment_id = receipt(response)
    assert ledger.journal(payment_id) == [
        ("payment", 1000, [(RECV, 1000), (MOB_PAY, -1000)]),
        ("fee", 10, [(RECV, 10), (FEES, -10)]),
    ]
    row = ledger.payment(payment_id)
    assert (row.amount, row.fee, row.fee_payer) == (1000, 10, "payer")
    assert _fee_owner(ledger, payment_id) == "100001"
    assert _balance(ledger, FEES) == income - 10
    # a repeat gets the same answer, DE 28 included, and charges nothing again
    again = call(atm, dict(request, t="0201"))
    assert again["28"] == "D00000010" and receipt(again) == payment_id
    assert _balance(ledger, FEES) == income - 10


def test_a_billers_fee_is_not_on_the_wire_and_reduces_its_payable(
    pos: IsoClient, ledger: Ledger
) -> None:
    """MOB01 at POS: rule 2 (biller + channel) beats rule 1 (biller) and 3 (channel)."""
    payable, income = _balance(ledger, MOB_PAY), _balance(ledger, FEES)
    response = call(pos, payment("994500000002", 2000, biller=MOB, terminal="POS00001"))
    assert response["28"] == NO_FEE
    payment_id = receipt(response)
    assert ledger.journal(payment_id) == [
        ("payment", 2000, [(RECV, 2000), (MOB_PAY, -2000)]),
        ("fee", 20, [(MOB_PAY, 20), (FEES, -20)]),
    ]
    assert ledger.payment(payment_id).fee_payer == "biller"
    assert _fee_owner(ledger, payment_id) is None  # the acquirer owes nothing for it
    assert _balance(ledger, MOB_PAY) == payable - 1980
    assert _balance(ledger, FEES) == income - 20


def test_the_biller_and_acquirer_rule_beats_the_channel_rule(
    pos: IsoClient, ledger: Ledger
) -> None:
    """UTIL01 at POS through 100001: rule 4 (biller + acquirer), not rule 3 (channel)."""
    response = call(pos, payment("1000002", 500_000, terminal="POS00001", PE="202610"))
    assert response["28"] == "D00000025"
    assert ledger.payment(receipt(response)).fee == 25


def test_the_biller_rule_on_a_host_link(host: IsoClient, ledger: Ledger) -> None:
    before = _balance(ledger, HOST_RECV)
    response = call(host, payment("994500000003", 300, biller=MOB, terminal="", acquirer="200002"))
    assert response["28"] == "D00000010"
    assert _balance(ledger, HOST_RECV) == before + 310


def test_an_advice_carries_the_fee_too(atm: IsoClient, ledger: Ledger) -> None:
    response = call(atm, payment("994500000004", 700, biller=MOB, mti="0220"))
    assert response["t"] == "0230" and response["28"] == "D00000010"
    assert [kind for kind, *_ in ledger.journal(receipt(response))] == ["payment", "fee"]


@pytest.mark.parametrize("channel", ["atm", "pos"])
def test_a_full_reversal_reverses_the_fee(
    switch: SwitchProcess, rules: None, ledger: Ledger, channel: str
) -> None:
    terminal = "ATM00001" if channel == "atm" else "POS00001"
    debtor, fee = (RECV, 10) if channel == "atm" else (MOB_PAY, 30)
    income = _balance(ledger, FEES)
    with switch.client(channel) as client:
        original = payment("994500000005", 3000, biller=MOB, terminal=terminal)
        payment_id = receipt(call(client, original))
        call(client, reversal(original))
    journal = ledger.journal(payment_id)
    assert [kind for kind, *_ in journal] == ["payment", "fee", "reversal", "fee_reversal"]
    assert journal[1] == ("fee", fee, [(debtor, fee), (FEES, -fee)])
    assert journal[3] == ("fee_reversal", fee, [(debtor, -fee), (FEES, fee)])
    assert _balance(ledger, FEES) == income


def test_a_partial_reversal_leaves_the_fee(atm: IsoClient, ledger: Ledger) -> None:
    original = payment("994500000006", 3000, biller=MOB)
    payment_id = receipt(call(atm, original))
    call(atm, reversal(original, kept=1000))
    assert [kind for kind, *_ in ledger.journal(payment_id)] == ["payment", "fee", "reversal"]


@pytest.mark.parametrize(
    ("account", "amount", "biller", "tags"),
    [
        ("994500000007", 99, MOB, {}),  # below MOB01's minimum (100)
        ("994500000007", 5_000_001, MOB, {}),  # above its maximum
        ("1000002", 100, UTIL, {"PE": "202611"}),  # UTIL01 is exact only: 250000 is due
        ("1000002", 250_001, UTIL, {"PE": "202611"}),
    ],
)
def test_amount_rules_answer_13_and_charge_nothing(
    atm: IsoClient, ledger: Ledger, account: str, amount: int, biller: str, tags: dict
) -> None:
    journal, income = ledger.count("journal"), _balance(ledger, FEES)
    response = call(atm, payment(account, amount, biller=biller, **tags), code="13")
    assert "28" not in response and "38" not in response
    assert ledger.count("journal") == journal
    assert _balance(ledger, FEES) == income
