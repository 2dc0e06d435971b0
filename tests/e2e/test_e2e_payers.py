"""Payer codes end to end (issue 12): ISO 8583 over real TCP with DE 48 PC, the held
biller's debts in the switch's database, the online biller TEL01 served by the reference
biller server in its own process, on SQLite and PostgreSQL.

An inquiry lists every open debt in DL, oldest first; a payment is split over them
(AL) as one ledger transaction; its reversal undoes the whole split, at the biller
too; a biller that fails is left out of the inquiry; a declined online part declines
the whole payment and nothing stays paid. Waits poll under a generous bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from e2e_support import Ledger, call, online_stack, receipt
from sqlalchemy import select

from loadtest.biller_process import BillerSimProcess
from switch.ledger import payer_codes
from switch.ledger import schema as s
from tests.client import IsoClient, bill_data, payer_inquiry, payer_payment, reversal
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

TEL = "TEL01"
WAIT = 90.0  # seconds: a bound on every wait, not a measure of speed
_p = s.payments.c


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory
) -> Iterator[tuple[SwitchProcess, BillerSimProcess]]:  # type: ignore[no-untyped-def]
    with online_stack(tmp_path_factory.mktemp("payers"), request.param, (TEL,)) as both:
        yield both


@pytest.fixture(scope="module")
def switch(stack: tuple[SwitchProcess, BillerSimProcess]) -> SwitchProcess:
    return stack[0]


_codes = iter(range(9100001, 9199999))


def _payer(ledger: Ledger, *pairs: tuple[str, str]) -> str:
    """A new payer code for ``pairs``, as ``billswitch payers add`` makes it."""
    code = f"PC{next(_codes)}"
    with ledger.engine.begin() as conn:
        payer_codes.add(conn, code, list(pairs), datetime.now(UTC))
    return code


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def _held(sim: BillerSimProcess, account: str) -> list[dict[str, Any]]:
    return [p for p in sim.payments(TEL) if p["account"] == account]


def _split(ledger: Ledger, head: int) -> list[tuple[str, str, int, int]]:
    with ledger.engine.connect() as conn:
        query = (
            select(_p.biller_code, _p.account, _p.amount, _p.reversed_amount)
            .where(_p.split_of == head)
            .order_by(_p.id)
        )
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


def _allocations(ledger: Ledger, head: int) -> list[tuple[str, str, int]]:
    a, d = s.allocations.c, s.debts.c
    with ledger.engine.connect() as conn:
        query = (
            select(d.account, d.period, a.amount)
            .select_from(s.allocations.join(s.debts, d.id == a.debt_id))
            .join(s.payments, _p.id == a.payment_id)
            .where(_p.split_of == head)
            .order_by(d.period)
        )
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


# -- inquiry ------------------------------------------------------------------------


def test_the_demo_payer_code_lists_every_debt_oldest_first(atm: IsoClient) -> None:
    response = call(atm, payer_inquiry("PC1000001"))
    tags = bill_data(response)
    assert tags["PC"] == "PC1000001"
    assert tags["DL"] == (
        "UTIL01:1000002:500000:202610;TEL01:5550001:8800:202611;UTIL01:1000002:250000:202611"
    )
    assert tags["DU"] == "000000758800"
    assert response["54"] == "0040944D000000758800"


def test_an_unknown_payer_code_is_14(atm: IsoClient) -> None:
    call(atm, payer_inquiry("PC0000000"), code="14")
    call(atm, payer_payment("PC0000000", 100), code="14")


def test_a_failing_online_biller_is_left_out_and_named(
    atm: IsoClient, ledger: Ledger, switch: SwitchProcess, faults: Callable[..., None]
) -> None:
    account = ledger.account(700)
    code = _payer(ledger, ("UTIL01", account), (TEL, "5550005"))
    faults(TEL, {"error": 503, "ops": ["fetch"]})
    tags = bill_data(call(atm, payer_inquiry(code)))
    assert tags["DL"] == f"UTIL01:{account}:700:202601"
    response = call(atm, payer_payment(code, 700))  # the held part alone
    assert bill_data(response)["AL"] == f"UTIL01:{account}:700"
    assert ledger.due(account) == 0
    lines = [x for x in switch.log_text().splitlines() if "payer code: biller left out" in x]
    assert any(TEL in x and code in x for x in lines)


# -- payments -------------------------------------------------------------------------


def test_a_split_payment_and_its_reversal(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    account = ledger.account(1000, 2000)
    code = _payer(ledger, (TEL, "5550003"), ("UTIL01", account))
    request = payer_payment(code, 4000)
    response = call(atm, request)
    tags = bill_data(response)
    assert tags["AL"] == f"UTIL01:{account}:3000;TEL01:5550003:1000"
    assert response["28"] == "D00000050"  # TEL01's demo fee on its part: 1 %, at least 50
    assert tags["DU"] == f"{1500:012d}"
    head = receipt(response)
    assert _split(ledger, head) == [
        ("", code, 4000, 0),
        ("UTIL01", account, 3000, 0),
        (TEL, "5550003", 1000, 0),
    ]
    assert _allocations(ledger, head) == [(account, "202601", 1000), (account, "202602", 2000)]
    assert [(h["status"], h["amount"]) for h in _held(sim, "5550003")] == [("accepted", 1000)]
    assert ledger.due(account) == 0

    call(atm, reversal(request))
    assert ledger.due(account) == 3000
    assert [r[3] for r in _split(ledger, head)] == [4000, 3000, 1000]
    _until(
        lambda: [h["status"] for h in _held(sim, "5550003")] == ["reversed"],
        "the online part reversed at the biller",
    )
    assert sim.account(TEL, "5550003")["amount_due"] == 2500


def test_paying_the_dl_total_clears_every_listed_debt(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    account = ledger.account(1500, 2500)
    code = _payer(ledger, ("UTIL01", account), (TEL, "5550004"))
    listed = bill_data(call(atm, payer_inquiry(code)))["DL"]
    total = sum(int(entry.split(":")[2]) for entry in listed.split(";"))
    assert total == 6500
    tags = bill_data(call(atm, payer_payment(code, total)))
    assert tags["DU"] == f"{0:012d}"
    assert ledger.due(account) == 0
    assert sim.account(TEL, "5550004")["amount_due"] == 0
    assert bill_data(call(atm, payer_inquiry(code)))["DL"] == ""
    call(atm, payer_payment(code, 1), code="13")  # nothing owed any more


def test_more_than_owed_is_13_and_moves_nothing(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    account = ledger.account(100)
    code = _payer(ledger, ("UTIL01", account), (TEL, "5550008"))
    call(atm, payer_payment(code, 2601), code="13")
    call(atm, payer_payment(code, 2600, currency="840"), code="13")
    assert ledger.due(account) == 100
    assert _held(sim, "5550008") == []


def test_a_declined_online_part_declines_the_whole_payment(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess, faults: Callable[..., None]
) -> None:
    """Two parts at TEL01, one refused: 05, nothing in the ledger, and the part the
    biller accepted is reversed there through the outbox; a repeat gets 05 again."""
    account = ledger.account(500)
    code = _payer(ledger, ("UTIL01", account), (TEL, "5550006"), (TEL, "5550007"))
    faults(TEL, {"decline": "account_closed", "ops": ["pay"], "count": 1})
    request = payer_payment(code, 5500)
    call(atm, request, code="05")
    assert ledger.due(account) == 500
    with ledger.engine.connect() as conn:
        assert conn.execute(select(s.payments).where(_p.account == code)).first() is None

    def undone() -> bool:
        held = _held(sim, "5550006") + _held(sim, "5550007")
        return len(held) == 1 and held[0]["status"] == "reversed"

    _until(undone, "the accepted part reversed at the biller")
    assert call(atm, request, code="05")
