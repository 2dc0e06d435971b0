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

import pytest

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.pinblock import make_iso0
from iso.dialect import decode_message
from tests import client as c
from tests.client import IsoClient, mac_ok
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


def test_hsm_unreachable_gets_96_and_moves_no_money(tmp_path: Path) -> None:
    """The switch starts only after the HSM told it its LMK; if it goes away later, 96."""
    with simulator(tmp_path) as (port, hsm):
        extra = (
            '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
            f'[hsm]\nurl = "tcp://127.0.0.1:{port}"\ntimeout = 0.5\n'
        )
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        with SwitchProcess.start(tmp_path, url, extra) as proc:
            hsm.send_signal(signal.SIGTERM)
            hsm.wait(timeout=20)
            with IsoClient(proc.ports["atm_mac"], mac_key=TAK) as conn:
                assert conn.call(c.network("001"))["39"] == "96"
            assert "Traceback" not in proc.log_text()
