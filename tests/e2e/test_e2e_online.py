"""Online billers end to end (issue 11): ISO 8583 over real TCP to the switch, signed HTTP
from the switch to the reference biller server running as a child process, on SQLite and
PostgreSQL. The biller's own store (its control API) is the truth every test compares
the ledger with: an approved payment is there once, a 68, a reversal and a payment the
ledger did not keep end up reversed there, and a refused one is not there at all.

Waits poll for an outcome under a generous bound; nothing asserts how fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2e_support import (
    Ledger,
    biller_payment_id,
    call,
    online_stack,
    receipt,
)
from sqlalchemy import func, select

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.pinblock import make_iso0
from loadtest.biller_process import BillerSimProcess
from switch.demo import DEMO_CARD_PAN
from switch.ledger import accounts as acc
from switch.ledger import schema as s
from tests.client import IsoClient, bill_data, inquiry, payment, reversal
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

TEL, PWR = "TEL01", "PWR01"
TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # ATM00001's test-only TPK (README)
WAIT = 90.0  # seconds: a bound on every wait, not a measure of speed


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory
) -> Iterator[tuple[SwitchProcess, BillerSimProcess]]:  # type: ignore[no-untyped-def]
    with online_stack(tmp_path_factory.mktemp("online"), request.param, (TEL, PWR)) as both:
        yield both


@pytest.fixture(scope="module")
def switch(stack: tuple[SwitchProcess, BillerSimProcess]) -> SwitchProcess:
    return stack[0]


def _until(done: Callable[[], bool], what: str = "the outcome") -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def _held(sim: BillerSimProcess, code: str, account: str) -> list[dict[str, Any]]:
    """The biller's payments of ``account``."""
    return [p for p in sim.payments(code) if p["account"] == account]


def _payments_of(ledger: Ledger, code: str, account: str) -> list[Any]:
    p = s.payments.c
    with ledger.engine.connect() as conn:
        query = select(s.payments).where(p.biller_code == code, p.account == account)
        return list(conn.execute(query))


def _settle_rows(ledger: Ledger, request: dict[str, str]) -> int:
    o = s.outbox.c
    with ledger.engine.connect() as conn:
        query = select(func.count()).where(
            o.action == "settle", o.payment_id == biller_payment_id(request)
        )
        return conn.execute(query).scalar_one()


def _outbox_row(ledger: Ledger, action: str, payment_id: str) -> tuple[str, str | None]:
    """(state, last_error) of the payment's outbox row for ``action`` (state "" if none)."""
    o = s.outbox.c
    with ledger.engine.connect() as conn:
        query = select(o.state, o.last_error).where(o.action == action, o.payment_id == payment_id)
        row = conn.execute(query).first()
    return (row.state, row.last_error) if row else ("", None)


def _reversed_there(sim: BillerSimProcess, code: str, account: str) -> bool:
    held = _held(sim, code, account)
    return len(held) == 1 and held[0]["status"] == "reversed"


# -- inquiry ----------------------------------------------------------------


def test_inquiry_asks_the_biller(atm: IsoClient) -> None:
    response = call(atm, inquiry("5550002", biller=TEL))
    tags = bill_data(response)
    assert tags["DU"] == "000000150000"
    assert tags["NM"] and tags["NM"] != "TURAN S."  # masked on the wire
    call(atm, inquiry("5559999", biller=TEL), code="14")


# -- payments ---------------------------------------------------------------


def test_payment_approved_with_the_billers_receipt(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    response = call(atm, payment("5550003", 2500, biller=TEL))
    tags = bill_data(response)
    assert tags["VR"]
    row = ledger.payment(receipt(response))
    assert (row.receipt, row.token) == (tags["VR"], None)
    held = _held(sim, TEL, "5550003")
    assert [(h["payment_id"], h["status"], h["amount"]) for h in held] == [
        (row.biller_payment_id, "accepted", 2500)
    ]
    assert row.biller_ref


def test_prepaid_payment_carries_the_token(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    response = call(atm, payment("METER-0001", 5000, biller=PWR))
    token = bill_data(response)["TK"]
    assert len(token) == 20 and token.isdigit()
    assert ledger.payment(receipt(response)).token == token
    assert len(_held(sim, PWR, "METER-0001")) == 1


def test_a_retransmitted_approved_payment_stays_at_the_biller(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    """A plain retransmission (not 0201) goes to the biller again (idempotent there) and
    arms a settle row after the posting removed it; the ledger answers it from the
    stored answer, and the settle row finds the payment posted: nothing is reversed."""
    request = payment("5550011", 2500, biller=TEL)
    first = call(atm, request)
    assert call(atm, request) == first
    o = s.outbox.c
    query = select(o.state).where(o.action == "settle", o.payment_id == biller_payment_id(request))

    def settled() -> bool:
        with ledger.engine.connect() as conn:
            return conn.execute(query).scalar() == "done"

    _until(settled, "the retransmission's settle row done")
    assert [h["status"] for h in _held(sim, TEL, "5550011")] == ["accepted"]
    assert ledger.payment(receipt(first)).reversed_amount == 0


@pytest.mark.parametrize(
    ("account", "amount", "code"),
    [("5559998", 100, "14"), ("5550004", 9999, "13"), ("5550100", 100, "05")],
)
def test_declines_leave_nothing_anywhere(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess, account: str, amount: int, code: str
) -> None:
    request = payment(account, amount, biller=TEL)
    call(atm, request, code=code)
    assert _held(sim, TEL, account) == []
    assert _payments_of(ledger, TEL, account) == []
    _until(lambda: _settle_rows(ledger, request) == 0, "the refused payment's settle row gone")


def test_biller_down_is_91_and_nothing_in_the_ledger(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    sim.kill()
    try:
        call(atm, payment("METER-0002", 1000, biller=PWR), code="91")
    finally:
        sim.start()
    assert _payments_of(ledger, PWR, "METER-0002") == []
    assert _held(sim, PWR, "METER-0002") == []


def test_no_answer_is_68_its_repeat_68_and_the_biller_copy_reversed(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess, faults: Callable[..., None]
) -> None:
    faults(TEL, {"hang": -1, "ops": ["pay"], "count": 1})
    request = payment("5550006", 2500, biller=TEL)
    call(atm, request, code="68")
    call(atm, dict(request, t="0201"), code="68")  # its stored answer: no second call
    assert _payments_of(ledger, TEL, "5550006") == []
    _until(lambda: _reversed_there(sim, TEL, "5550006"), "the 68's payment reversed")
    assert _payments_of(ledger, TEL, "5550006") == []


@pytest.mark.parametrize("corrupt", ["bad_signature", "not_json"])
def test_a_broken_answer_is_68_and_settled(
    atm: IsoClient,
    ledger: Ledger,
    sim: BillerSimProcess,
    faults: Callable[..., None],
    corrupt: str,
) -> None:
    account = {"bad_signature": "5550007", "not_json": "5550008"}[corrupt]
    faults(TEL, {"corrupt": corrupt, "ops": ["pay"], "count": 1})
    call(atm, payment(account, 2500, biller=TEL), code="68")
    _until(lambda: _reversed_there(sim, TEL, account), "the broken answer's payment reversed")
    assert _payments_of(ledger, TEL, account) == []


# -- reversals and advices ----------------------------------------------------


def test_reversal_reaches_the_biller(atm: IsoClient, ledger: Ledger, sim: BillerSimProcess) -> None:
    original = payment("5550009", 2500, biller=TEL)
    payment_id = receipt(call(atm, original))
    call(atm, reversal(original))
    assert ledger.payment(payment_id).reversed_amount == 2500
    _until(lambda: _reversed_there(sim, TEL, "5550009"), "the reversal at the biller")


def test_partial_reversal_of_an_online_payment_is_12(atm: IsoClient, ledger: Ledger) -> None:
    original = payment("5550010", 2500, biller=TEL)
    payment_id = receipt(call(atm, original))
    call(atm, reversal(original, kept=1000), code="12")
    assert ledger.payment(payment_id).reversed_amount == 0


def test_advice_while_the_biller_is_down_is_delivered_later(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    sim.kill()
    try:
        call(atm, payment("METER-0003", 700, biller=PWR, mti="0220"))
        assert len(_payments_of(ledger, PWR, "METER-0003")) == 1
    finally:
        sim.start()
    _until(lambda: len(_held(sim, PWR, "METER-0003")) == 1, "the advice at the biller")
    (row,) = _payments_of(ledger, PWR, "METER-0003")
    assert _held(sim, PWR, "METER-0003")[0]["payment_id"] == row.biller_payment_id


def test_the_advice_of_a_68_is_the_payment_the_biller_holds(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess, faults: Callable[..., None]
) -> None:
    """The biller took a 0200 whose answer never came (68), then its advice arrives (0220,
    same identity: the acquirer took the money). The advice's delivery is that same
    payment, same id and content (paid_at is DE 7, not when each message arrived), so the
    biller acknowledges it rather than answering 409 and the row is done, not parked; the
    settle row then finds the payment posted and leaves the biller's copy alone."""
    faults(TEL, {"hang": -1, "ops": ["pay"], "count": 1})
    request = payment("5550012", 2500, biller=TEL)
    pid = biller_payment_id(request)
    call(atm, request, code="68")
    call(atm, dict(request, t="0220"))
    _until(lambda: _outbox_row(ledger, "pay", pid)[0] != "pending", "the advice delivered")
    assert _outbox_row(ledger, "pay", pid) == ("done", None)
    _until(lambda: _outbox_row(ledger, "settle", pid)[0] == "done", "the 68's settle row done")
    held = _held(sim, TEL, "5550012")
    assert [(h["payment_id"], h["status"], h["amount"]) for h in held] == [(pid, "accepted", 2500)]
    (row,) = _payments_of(ledger, TEL, "5550012")
    assert (row.biller_payment_id, row.reversed_amount) == (pid, 0)


def test_an_advice_after_its_68_was_reversed_there_waits_for_an_operator(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess, faults: Callable[..., None]
) -> None:
    """The 68 was settled (the biller's copy reversed) before the advice came: the biller
    answers the advice's payment with its id reversed and never takes it again under that
    id, so the row is parked saying so (not retried forever, not a 409)."""
    faults(TEL, {"hang": -1, "ops": ["pay"], "count": 1})
    request = payment("5550013", 2500, biller=TEL)
    pid = biller_payment_id(request)
    call(atm, request, code="68")
    _until(lambda: _reversed_there(sim, TEL, "5550013"), "the 68's payment reversed")
    call(atm, dict(request, t="0220"))
    _until(lambda: _outbox_row(ledger, "pay", pid)[0] != "pending", "the advice delivered")
    state, reason = _outbox_row(ledger, "pay", pid)
    assert state == "parked" and reason is not None and "ReversedThere" in reason, reason
    assert len(_payments_of(ledger, TEL, "5550013")) == 1  # the acquirer took the money


# -- circuit breaker ------------------------------------------------------------


def test_an_open_circuit_answers_91_without_calling(
    atm: IsoClient, sim: BillerSimProcess, faults: Callable[..., None], switch: SwitchProcess
) -> None:
    """Five 5xx in a row open PWR01's circuit; the fault then clears itself at the biller,
    so a payment that reached it would be approved: those answered 91 never did. (The
    circuit lets a probe through 5 s after opening: the payments right after the fifth
    91 meet it open.)"""
    faults(PWR, {"error": 503, "ops": ["pay"], "count": 5})
    for n in range(5):
        call(atm, payment(f"METER-01{n:02d}", 1000, biller=PWR), code="91")
    answers = {}
    for n in range(3):
        account = f"METER-02{n:02d}"
        answers[account] = atm.call(payment(account, 1000, biller=PWR))["39"]
    refused = [a for a, code in answers.items() if code == "91"]
    assert refused, answers
    for account in refused:
        assert _held(sim, PWR, account) == []
    assert "biller circuit" in switch.log_text()
    # leave the circuit closed for whatever runs next: a probe succeeds once it is let through
    _until(
        lambda: (
            atm.call(payment(f"METER-03{time.monotonic_ns() % 100:02d}", 1000, biller=PWR))["39"]
            == "00"
        ),
        "the circuit closed again",
    )


def _wrong_pins(ledger: Ledger) -> int:
    """Wrong PINs counted for any card (the demo card is the only one)."""
    with ledger.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(s.pin_tries.c.tries), 0))).scalar_one()


def test_an_open_circuit_is_91_before_the_on_us_pin_is_verified(
    atm: IsoClient, ledger: Ledger, faults: Callable[..., None]
) -> None:
    """A dead biller's refusal costs no PIN round trip: an on-us card payment (demo card,
    wrong PIN) to PWR01 with its circuit open is 91, its PIN never reaching the HSM and
    no try counted (the card's holder is not punished for a biller's outage). The
    fault stays on, so a probe let through meanwhile fails too."""
    faults(PWR, {"error": 503, "ops": ["pay"]})
    for n in range(5):
        call(atm, payment(f"METER-04{n:02d}", 1000, biller=PWR), code="91")
    tried = _wrong_pins(ledger)
    request = payment("METER-0500", 1000, biller=PWR)
    block = encrypt_ecb(TPK, make_iso0("9999", DEMO_CARD_PAN)).hex().upper()
    request.update({"2": DEMO_CARD_PAN, "52": block, "53": "0100000000000000", "14": "3012"})
    call(atm, request, code="91")
    assert _wrong_pins(ledger) == tried


# -- fees (issue 12) --------------------------------------------------------


def test_the_demo_fee_of_tel01_is_the_switchs_and_the_biller_is_asked_the_amount_only(
    atm: IsoClient, ledger: Ledger, sim: BillerSimProcess
) -> None:
    """TEL01's demo rule: 1 %, at least 50, paid by the payer on top (DE 28)."""
    response = call(atm, inquiry("5550001", biller=TEL))
    assert (bill_data(response)["DU"], response["28"]) == ("000000008800", "D00000088")
    income = acc.fee_income("944")
    for account, amount, fee in (("5550001", 8800, 88), ("5550040", 2500, 50)):
        response = call(atm, payment(account, amount, biller=TEL))
        assert response["28"] == f"D{fee:08d}"
        payment_id = receipt(response)
        receivable, payable = (
            acc.acquirer_receivable("100001", "944"),
            acc.biller_payable(TEL, "944"),
        )
        assert ledger.journal(payment_id) == [
            ("payment", amount, [(receivable, amount), (payable, -amount)]),
            ("fee", fee, [(receivable, fee), (income, -fee)]),
        ]
        held = _held(sim, TEL, account)
        assert [(h["status"], h["amount"]) for h in held] == [("accepted", amount)]
