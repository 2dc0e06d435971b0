"""On-us wallet card payments from ATM00001: PIN through the HSM, tries counted, wallet debited.

Test-only demo values (README): card 9990001000000001, PIN 1234, wallet 1000000
in 944; the PIN block is ISO format 0 under the terminal's demo TPK.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select, text

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.pinblock import make_iso0
from switch.ledger import schema as s
from tests import client as c
from tests.client import IsoClient
from tests.conftest import BACKENDS, backend_url
from tests.switch_process import SwitchProcess

TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
PAN = "9990001000000001"
MAC_CHANNEL = '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'


@pytest.fixture(params=BACKENDS)
def switch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    home = tmp_path_factory.mktemp("onus")
    for url in backend_url(request.param, home):
        with SwitchProcess.start(home, url, MAC_CHANNEL) as proc:
            yield proc


def _pay(
    conn: IsoClient,
    pin: str,
    amount: int = 1000,
    account: str = "1000002",
    *,
    clear_block: bytes | None = None,
    control: str = "0100000000000000",
) -> str:
    request = c.payment(account, amount)
    block = encrypt_ecb(TPK, clear_block or make_iso0(pin, PAN)).hex().upper()
    request.update({"2": PAN, "52": block, "53": control, "14": "3012"})
    return conn.call(request)["39"]


def _wallet_and_payments(proc: SwitchProcess) -> tuple[int, int]:
    """The wallet's funds (checked against its ledger entries) and the payment count."""
    engine = create_engine(proc.db_url)
    with engine.connect() as db:
        wallet, funds = db.execute(select(s.cards.c.wallet_account, s.cards.c.funds)).one()
        balance = db.execute(
            select(func.sum(s.entries.c.amount)).where(s.entries.c.account_code == wallet)
        ).scalar_one()
        payments = db.execute(select(func.count()).select_from(s.payments)).scalar_one()
    engine.dispose()
    assert funds == -balance  # the running figure agrees with the double entry
    return funds, payments


def test_right_pin_pays_from_the_wallet(switch: SwitchProcess) -> None:
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert _pay(conn, "1234", 1000) == "00"
    assert _wallet_and_payments(switch) == (1_000_000 - 1000, 1)


def test_wrong_pins_get_55_then_75_and_move_no_money(switch: SwitchProcess) -> None:
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert _pay(conn, "9999") == "55"
        assert _pay(conn, "1234") == "00"  # a right PIN resets the count
        assert [_pay(conn, "0000") for _ in range(3)] == ["55", "55", "75"]
        assert _pay(conn, "1234") == "75"  # blocked for PIN use now
    assert _wallet_and_payments(switch) == (1_000_000 - 1000, 1)


def test_a_block_that_is_no_pin_gets_55_without_counting_a_try(switch: SwitchProcess) -> None:
    """A PIN block that does not decrypt to a format 0 block (here: control nibble 7,
    as a terminal out of key sync would send) is the HSM's error 20: 55, no try counted."""
    garbage = bytes.fromhex("7412FFFFFFFFFFFF")
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert [_pay(conn, "", clear_block=garbage) for _ in range(4)] == ["55"] * 4
        assert _pay(conn, "1234") == "00"  # four of those did not block the card
    assert _wallet_and_payments(switch) == (1_000_000 - 1000, 1)


@pytest.mark.parametrize("control", ["4800000000000000", "9900000000000000"])
def test_a_pin_format_the_terminal_key_cannot_carry_gets_30(
    switch: SwitchProcess, control: str
) -> None:
    """DE 53 naming ISO 4 (an AES format; the demo TPK is 3DES) or no format at all is a
    malformed DE 53 (30), not a system malfunction, and moves no money."""
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert _pay(conn, "1234", control=control) == "30"
        assert _pay(conn, "1234") == "00"
    assert _wallet_and_payments(switch) == (1_000_000 - 1000, 1)


def test_an_operator_reset_unblocks_the_card_at_once(switch: SwitchProcess) -> None:
    """``billswitch cards reset-tries`` (a separate process, as an operator runs it) clears
    the count of a card blocked with 75; the running switch honours it on the next try
    although it had the blocked card in its cache."""
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert [_pay(conn, "0000") for _ in range(3)] == ["55", "55", "75"]
        assert _pay(conn, "1234") == "75"
        listed = _cards_cli(switch, "list")
        assert PAN not in listed
        card = next(line for line in listed.splitlines() if "999000******0001" in line).split()
        wallet, tries = card[1], card[-2]
        assert tries == "3"
        assert "wrong PIN tries 3 -> 0" in _cards_cli(switch, "reset-tries", wallet)
        assert _pay(conn, "1234") == "00"
    assert _wallet_and_payments(switch) == (1_000_000 - 1000, 1)


def _cards_cli(proc: SwitchProcess, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "switch.cli", "cards", "--home", str(proc.home)]
        + ["--db", proc.db_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_wallet_without_the_funds_gets_51(switch: SwitchProcess) -> None:
    engine = create_engine(switch.db_url)
    with engine.begin() as db:
        db.execute(
            text(
                "insert into debts (biller_code, account, period, amount_original, amount_open)"
                " values ('UTIL01', '1000050', '202611', 5000000, 5000000)"
            )
        )
    engine.dispose()
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert _pay(conn, "1234", 1_000_001, account="1000050") == "51"
        assert _pay(conn, "1234", 1_000_000, account="1000050") == "00"
    assert _wallet_and_payments(switch) == (0, 1)


def test_no_pan_or_pin_block_is_stored_or_logged(switch: SwitchProcess) -> None:
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert _pay(conn, "1234") == "00"
        assert _pay(conn, "4321") == "55"
    block = encrypt_ecb(TPK, make_iso0("1234", PAN)).hex().upper()
    engine = create_engine(switch.db_url)
    with engine.connect() as db:
        names = sorted(s.metadata.tables)
        dump = " ".join(repr(db.execute(text(f"select * from {n}")).all()) for n in names)
    engine.dispose()
    for secret in (PAN, block, "0123456789ABCDEFFEDCBA9876543210"):
        assert secret not in dump.upper()
        assert secret not in switch.log_text().upper()


def test_reversal_gives_the_wallet_its_money_back(switch: SwitchProcess) -> None:
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        request = c.payment("1000002", 4000)
        block = encrypt_ecb(TPK, make_iso0("1234", PAN)).hex().upper()
        request.update({"2": PAN, "52": block, "53": "0100000000000000"})
        assert conn.call(request)["39"] == "00"
        assert _wallet_and_payments(switch) == (1_000_000 - 4000, 1)
        assert conn.call(c.reversal(request, kept=1000))["39"] == "00"
    assert _wallet_and_payments(switch) == (1_000_000 - 1000, 1)


def test_a_card_blocked_elsewhere_pays_nothing_despite_a_cached_card(
    switch: SwitchProcess,
) -> None:
    """Another node counted the third wrong PIN: this node's card cache does not know, but
    the try is reserved in the card's pin_tries row, which has none left, so the payment gets 75."""
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert _pay(conn, "1234", 500) == "00"  # the card is now in this node's cache
        engine = create_engine(switch.db_url)
        with engine.begin() as db:
            db.execute(text("update pin_tries set tries = 3"))
        engine.dispose()
        assert _pay(conn, "1234", 500) == "75"
    assert _wallet_and_payments(switch) == (1_000_000 - 500, 1)
