"""The switch with its HSM over TCP: the payShield-protocol simulator as a separate process.

Configuration only (``[hsm] url``) decides between the in-process HSM and a
payShield-protocol one; the same MAC and PIN behaviour must hold over TCP.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Table, func, select

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.pinblock import make_iso0
from iso.dialect import decode_message
from switch.ledger import schema as s
from tests import client as c
from tests.client import IsoClient, mac_ok
from tests.ledger.ledger_support import assert_invariants
from tests.switch_process import SwitchProcess

TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
PAN = "9990001000000001"
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def simulator(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The simulator (test LMK) as a process: its port, and the process to stop it early."""
    log = tmp_path / "hsm.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hsm_sim", "--port", "0", "--lmk", "test"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"listening [\d.]+:(\d+)", log.read_text())
            if found:
                yield int(found.group(1)), proc
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("hsm_sim did not start: " + log.read_text())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.fixture
def hsm_port(tmp_path: Path) -> Iterator[int]:
    with simulator(tmp_path) as (port, _):
        yield port


def test_mac_and_pin_through_the_simulator(tmp_path: Path, hsm_port: int) -> None:
    extra = (
        '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
        f'[hsm]\nurl = "tcp://127.0.0.1:{hsm_port}"\n'
    )
    with SwitchProcess.start(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", extra) as proc:
        with IsoClient(proc.ports["atm_mac"], mac_key=TAK) as conn:
            c.sign_on(conn)
            # The simulator's error 69 (ISO 4 needs an AES key) is a malformed DE 53 here too.
            for pin, fmt, code in (
                ("1234", "01", "00"),
                ("4321", "01", "55"),
                ("1234", "48", "30"),
            ):
                request = c.payment("1000002", 250)
                block = encrypt_ecb(TPK, make_iso0(pin, PAN)).hex().upper()
                request.update({"2": PAN, "52": block, "53": fmt + "00000000000000"})
                conn.send(request)
                raw = conn.recv_raw()
                assert decode_message(raw)["39"] == code
                assert mac_ok(raw, TAK)
        with IsoClient(proc.ports["atm_mac"]) as conn:  # no MAC at all
            assert conn.call(c.network("301"))["39"] == "63"


def _count(conn: Connection, table: Table) -> int:
    return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _money(proc: SwitchProcess) -> tuple[Any, ...]:
    """Payments, journal rows, request rows, UTIL01 1000001's open debts, wallet funds."""
    engine = proc.engine()
    try:
        with engine.connect() as conn:
            assert_invariants(conn)
            debts = conn.execute(
                select(s.debts.c.amount_open)
                .where(s.debts.c.account == "1000001")
                .order_by(s.debts.c.id)
            ).scalars()
            funds = conn.execute(select(s.cards.c.funds)).scalar_one()
            counts = [_count(conn, table) for table in (s.payments, s.journal, s.requests)]
            return (*counts, list(debts), funds)
    finally:
        engine.dispose()


def test_hsm_unreachable_gets_96_and_moves_no_money(db_url: str, tmp_path: Path) -> None:
    """Payments that need the HSM (a MAC to verify, an on-us PIN) get 96 and move nothing.

    The switch starts only after the HSM told it its LMK; the HSM then goes away.
    ATM00001 signs on over the MAC-less ``atm`` channel (no HSM needed), so the
    payments reach the HSM step instead of stopping at sign-on.
    """
    with simulator(tmp_path) as (port, hsm):
        extra = (
            '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
            f'[hsm]\nurl = "tcp://127.0.0.1:{port}"\ntimeout = 0.5\n'
        )
        with SwitchProcess.start(tmp_path, db_url, extra) as proc:
            hsm.send_signal(signal.SIGTERM)
            hsm.wait(timeout=20)
            _without_the_hsm(proc)


def _without_the_hsm(proc: SwitchProcess) -> None:
    """What the switch answers once its HSM is gone: 96, nothing moved; a payment
    needing no HSM still pays (the control: the money check can see money move)."""
    with IsoClient(proc.ports["atm_mac"], mac_key=TAK) as conn:
        assert conn.call(c.network("001"))["39"] == "96"  # the MAC cannot be checked
    with IsoClient(proc.ports["atm"]) as plain:
        c.sign_on(plain)
    before = _money(proc)
    assert before[3] == [12345]  # demo account 1000001

    maced = c.payment("1000001", 100)
    with IsoClient(proc.ports["atm_mac"], mac_key=TAK) as conn:
        response = conn.call(maced)
    assert (response["39"], response["11"]) == ("96", maced["11"]), response
    assert "38" not in response and "48" not in response

    on_us = c.payment("1000001", 200)
    block = encrypt_ecb(TPK, make_iso0("1234", PAN)).hex().upper()
    on_us.update({"2": PAN, "52": block, "53": "01" + "0" * 14})
    with IsoClient(proc.ports["atm"]) as plain:
        response = plain.call(on_us)
    assert (response["39"], response["11"]) == ("96", on_us["11"]), response
    assert "38" not in response and "48" not in response

    assert _money(proc) == before  # no payment, journal row, request row, debt or funds

    # Control: a payment needing no HSM moves money, and the check above sees it.
    with IsoClient(proc.ports["atm"]) as plain:
        assert plain.call(c.payment("1000001", 300))["39"] == "00"
    payments, _, _, debts, funds = _money(proc)
    assert (payments, debts, funds) == (before[0] + 1, [12045], before[4])
    assert "Traceback" not in proc.log_text()
