"""Repeats are answered before the checks, and the response codes of spec section 5 as
amended (issue 8, item 3 and "Response codes"), over real TCP on SQLite and PostgreSQL.

A repeat (or retransmission) of a request the switch answered gets that answer again,
data element for data element, whatever changed since: the terminal signed off, the
biller was closed or its amount rules changed, the card got blocked; a re-encrypted
ISO-3 PIN block is not other content. Test-only demo values (README): card
9990001000000001 with PIN 1234, ATM00001's TPK and TAK.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from e2e_support import Ledger, backend_url, call, sign_on_all, started
from sqlalchemy import func, select, update

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.pinblock import make_iso3
from iso.dialect import decode_message
from switch.ledger import schema as s
from tests import client as c
from tests.client import IsoClient, mac_ok
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
PAN = "9990001000000001"
ISO3 = "4700000000000000"  # DE 53: ISO 9564 format 3
SETTINGS = "reference_refresh = 0.2"  # operator changes reach the switch within a moment
EXTRA = '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
WAIT = 30.0  # seconds: a generous bound for the switch to see a database change


@pytest.fixture(scope="module", params=BACKENDS)
def switch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    home = tmp_path_factory.mktemp("repeats")
    for url in backend_url(request.param, home):
        with started(home, url, EXTRA, top_config=SETTINGS) as proc:
            sign_on_all(proc)
            yield proc


@pytest.fixture
def mac_atm(switch: SwitchProcess) -> Iterator[IsoClient]:
    """ATM00001 on the MAC channel (signed on by the fixture)."""
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as client:
        yield client


def macd(client: IsoClient, fields: dict[str, str]) -> dict[str, str]:
    """Send ``fields`` MACed; the answer, checked to be MACed under the TAK."""
    client.send(fields)
    raw = client.recv_raw()
    assert mac_ok(raw, TAK), raw
    return decode_message(raw)


def pin_payment(account: str, amount: int, pin: str = "1234", pan: str = PAN) -> dict[str, str]:
    """An on-us card payment with an ISO-3 PIN block under the demo TPK."""
    return with_new_pin_block(c.payment(account, amount) | {"2": pan, "14": "3012"}, pin)


def with_new_pin_block(request: dict[str, str], pin: str = "1234") -> dict[str, str]:
    """``request`` with its PIN encrypted afresh: ISO-3's random fill changes DE 52."""
    block = encrypt_ecb(TPK, make_iso3(pin, request["2"])).hex().upper()
    return request | {"52": block, "53": ISO3}


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the switch did not see the change"
        time.sleep(0.1)


def amounts(ledger: Ledger, account: str) -> list[int]:
    return [p.amount for p in ledger.payments(account)]


def pin_tries(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return conn.execute(select(s.pin_tries.c.tries)).scalar_one()


def change(ledger: Ledger, table: str, where: object, **values: object) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(update(s.metadata.tables[table]).where(where).values(**values))


# -- repeats -------------------------------------------------------------------


def test_a_repeat_after_sign_off_gets_the_stored_answer(
    switch: SwitchProcess, ledger: Ledger, mac_atm: IsoClient
) -> None:
    """0200 approved, the terminal signs off, the 0201 (and a plain retransmission) get the
    same 0210, MACed, instead of 03; no second payment."""
    account = ledger.account(5000)
    first = c.payment(account, 1000)
    paid = macd(mac_atm, first)
    assert paid["39"] == "00"
    try:
        assert macd(mac_atm, c.network("002"))["39"] == "00"
        assert macd(mac_atm, c.payment(account, 1000))["39"] == "03"  # signed off indeed
        assert macd(mac_atm, first | {"t": "0201"}) == paid
        assert macd(mac_atm, first) == paid
    finally:
        assert macd(mac_atm, c.network("001"))["39"] == "00"
    assert amounts(ledger, account) == [1000]
    assert ledger.due(account) == 4000


def test_a_repeat_with_new_local_time_and_rrn_is_the_same_content(
    atm: IsoClient, ledger: Ledger
) -> None:
    """Content is MTI, DE 3, 4, 49, 48 and 2 (spec section 5): DE 12, 13 and 37 are not."""
    account = ledger.account(5000)
    first = c.payment(account, 1000)
    paid = call(atm, first)
    changed = {"12": "235959", "13": "1231", "37": "000000000042"}
    assert atm.call(first | {"t": "0201"} | changed) == paid
    assert atm.call(first | changed) == paid
    assert amounts(ledger, account) == [1000]


def test_a_repeat_after_the_biller_changed_gets_the_stored_answer(
    atm: IsoClient, ledger: Ledger
) -> None:
    """Biller closed (92 for new payments), then its minimum raised (13): a repeat and a
    retransmission of the approved payment still get its 0210."""
    account = ledger.account(5000)
    first = c.payment(account, 1000)
    paid = call(atm, first)
    util01 = s.billers.c.code == "UTIL01"
    try:
        change(ledger, "billers", util01, status="inactive")
        wait_for(lambda: atm.call(c.inquiry(account))["39"] == "92")
        call(atm, c.payment(account, 1000), "92")
        assert atm.call(first | {"t": "0201"}) == paid
        assert atm.call(first) == paid
        change(ledger, "billers", util01, status="active", min_amount=10**9)
        wait_for(lambda: atm.call(c.inquiry(account))["39"] == "00")
        call(atm, c.payment(account, 1000), "13")
        assert atm.call(first | {"t": "0201"}) == paid
        assert atm.call(first) == paid
    finally:
        change(ledger, "billers", util01, status="active", min_amount=1)
        probe = ledger.account(100)
        wait_for(lambda: atm.call(c.payment(probe, 100))["39"] == "00")
    assert amounts(ledger, account) == [1000]


def test_a_reversal_repeat_after_sign_off_gets_the_stored_answer(
    atm: IsoClient, ledger: Ledger
) -> None:
    """0400 approved, ATM00003 signs off: the 0401 gets the stored 0410; a 0401 that keeps
    another amount (DE 95) is other content (94), and nothing is reversed twice."""
    account = ledger.account(5000)
    c.sign_on(atm, terminal="ATM00003")
    original = c.payment(account, 1000, terminal="ATM00003")
    call(atm, original)
    first = c.reversal(original, kept=400)
    reversed_ = call(atm, first)
    try:
        call(atm, c.network("002", terminal="ATM00003"))
        assert atm.call(first | {"t": "0401"}) == reversed_
        other = first | {"t": "0401", "95": "000000000300" + "0" * 30}
        assert atm.call(other)["39"] == "94"
    finally:
        c.sign_on(atm, terminal="ATM00003")
    assert [p.reversed_amount for p in ledger.payments(account)] == [600]
    assert ledger.due(account) == 5000 - 400


def test_a_pin_repeat_with_a_reencrypted_block_gets_the_stored_answer(
    mac_atm: IsoClient, ledger: Ledger
) -> None:
    """DE 52 differs on a repeat (ISO-3 fill is random): not other content, so not 94."""
    account = ledger.account(5000)
    first = pin_payment(account, 1000)
    paid = macd(mac_atm, first)
    assert paid["39"] == "00"
    repeat = with_new_pin_block(first | {"t": "0201"})
    assert repeat["52"] != first["52"]
    assert macd(mac_atm, repeat) == paid
    assert macd(mac_atm, with_new_pin_block(first)) == paid
    assert amounts(ledger, account) == [1000]
    assert pin_tries(ledger) == 0


def test_a_pin_repeat_stands_though_the_card_was_blocked_since(
    mac_atm: IsoClient, ledger: Ledger
) -> None:
    """Approved, then three wrong PINs block the card (75): the repeat of the approved
    payment gets its 00 without a PIN check, and counts no try."""
    account = ledger.account(5000)
    first = pin_payment(account, 1000)
    paid = macd(mac_atm, first)
    assert paid["39"] == "00"
    try:
        wrong = [macd(mac_atm, pin_payment(account, 1000, "0000"))["39"] for _ in range(3)]
        assert wrong == ["55", "55", "75"]
        assert macd(mac_atm, with_new_pin_block(first | {"t": "0201"})) == paid
        assert pin_tries(ledger) == 3
    finally:
        change(ledger, "pin_tries", s.pin_tries.c.tries > 0, tries=0)
    assert amounts(ledger, account) == [1000]


def test_a_repeat_with_other_content_is_94_before_the_pin_check(
    mac_atm: IsoClient, ledger: Ledger
) -> None:
    """Same identity, other amount: 94 at once, the wrong PIN it carries is not counted."""
    account = ledger.account(5000)
    first = pin_payment(account, 1000)
    assert macd(mac_atm, first)["39"] == "00"
    other = with_new_pin_block(first | {"t": "0201", "4": "000000002000"}, "0000")
    assert macd(mac_atm, other)["39"] == "94"
    assert pin_tries(ledger) == 0
    assert amounts(ledger, account) == [1000]


# -- response codes (section 5 as amended) ----------------------------------------


def test_14_on_us_card_unknown_to_the_issuer(atm: IsoClient, ledger: Ledger) -> None:
    account = ledger.account(5000)
    call(atm, pin_payment(account, 1000, pan="9990009999999999"), "14")
    assert amounts(ledger, account) == []


def operator_lines(proc: SwitchProcess, reason: str) -> list[str]:
    """Error-level log lines asking the operator to act, about ``reason``."""
    lines = proc.log_text().splitlines()
    wanted = ("[error", "operator action needed", reason)
    return [line for line in lines if all(part in line for part in wanted)]


def test_96_for_a_terminal_without_a_tpk(switch: SwitchProcess, ledger: Ledger) -> None:
    """ATM00002 has no keys: an on-us payment from it is the switch's malfunction (96, an
    operator log line naming the terminal and the key type), not a security violation."""
    account = ledger.account(5000)
    with switch.client("atm") as atm:
        call(atm, pin_payment(account, 1000) | {"41": "ATM00002"}, "96")
    wait_for(lambda: bool(operator_lines(switch, "no active TPK for 100001:ATM00002")))
    assert PAN not in switch.log_text()
    assert amounts(ledger, account) == []


def test_96_when_the_issuer_has_no_pvk(
    switch: SwitchProcess, atm: IsoClient, ledger: Ledger
) -> None:
    """The PVK retired: on-us PINs cannot be verified, 96 and an operator log line. Until
    the switch sees the change, a block that is no PIN probes it (55, no try counted)."""
    account = ledger.account(5000)
    pvk = s.keys.c.key_type == "PVK"
    garbage = encrypt_ecb(TPK, bytes.fromhex("7412FFFFFFFFFFFF")).hex().upper()
    try:
        change(ledger, "keys", pvk, state="retired")
        probe = pin_payment(account, 1000)
        wait_for(lambda: atm.call(probe | {"11": c.next_stan(), "52": garbage})["39"] == "96")
        call(atm, pin_payment(account, 1000), "96")
        wait_for(lambda: bool(operator_lines(switch, "no active PVK for issuer")))
    finally:
        change(ledger, "keys", pvk, state="active")
        paying = ledger.account(100)
        wait_for(lambda: atm.call(pin_payment(paying, 100))["39"] == "00")
    assert PAN not in switch.log_text()
    assert amounts(ledger, account) == []
    assert pin_tries(ledger) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_91_when_the_read_queue_is_full(backend: str, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """No room in the read pool's queue (here: none at all): sign-on, payment and repeat
    are shed with 91, and nothing is recorded."""
    home = tmp_path_factory.mktemp("reads_full")
    for url in backend_url(backend, home):
        with started(home, url, "[ledger]\nread_queue_max = 0\n") as proc:
            with proc.client("atm") as atm:
                call(atm, c.network("001"), "91")
                request = c.payment("1000002", 100)
                call(atm, request, "91")
                call(atm, request | {"t": "0201"}, "91")
            ledger = Ledger(url)
            try:
                with ledger.engine.connect() as conn:
                    for table in (s.payments, s.requests, s.sign_ons):
                        count = select(func.count()).select_from(table)
                        assert conn.execute(count).scalar_one() == 0, table.name
            finally:
                ledger.close()
