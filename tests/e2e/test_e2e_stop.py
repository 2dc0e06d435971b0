"""A graceful stop answers every committed request before it closes (issue 8, item 11).

The switch MACs its answers through a payShield-protocol simulator that
answers each command only after a delay (``hsm_sim --delay``), so when the
payments are committed their MACed answers still wait for the HSM. A SIGTERM
then must not close the connection before they are written: an approved
payment whose answer never leaves is money moved for a terminal told nothing.
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
from e2e_support import Ledger, backend_url, receipt, started

from iso.dialect import decode_message
from tests import client as c
from tests.client import IsoClient, mac_ok
from tests.conftest import BACKENDS

TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")  # ATM00001's test TAK (demo data)
ROOT = Path(__file__).resolve().parents[2]
HSM_DELAY = 3.0  # seconds the simulator holds each answer
PAYMENTS = 8
WAIT = 60.0  # the bound of every wait (never reached when all is well)


@contextmanager
def hsm_sim(home: Path, delay: float) -> Iterator[str]:
    """``hsm_sim`` answering every command after ``delay`` seconds; yields its URL."""
    log = home / "hsm.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hsm_sim",
                "--port",
                "0",
                "--lmk",
                "test",
                "--delay",
                str(delay),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    try:
        deadline = time.monotonic() + WAIT
        while not (found := re.search(r"listening ([\d.]+:\d+)", log.read_text())):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("hsm_sim did not start: " + log.read_text())
            time.sleep(0.05)
        yield f"tcp://{found.group(1)}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.fixture
def slow_hsm(tmp_path: Path) -> Iterator[str]:
    with hsm_sim(tmp_path, HSM_DELAY) as url:
        yield url


def _eventually(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.05)


def _answers_until_closed(conn: IsoClient) -> list[bytes]:
    answers = []
    while True:
        try:
            answers.append(conn.recv_raw())
        except ConnectionError:
            return answers


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_answers_every_committed_payment_before_closing(
    backend: str, tmp_path: Path, slow_hsm: str
) -> None:
    extra = (
        '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
        f'[hsm]\nurl = "{slow_hsm}"\ntimeout = 30\n'
    )
    for url in backend_url(backend, tmp_path):
        with started(tmp_path, url, extra) as proc:
            ledger = Ledger(url)
            try:
                account = ledger.account(PAYMENTS * 100)
                with IsoClient(proc.ports["atm_mac"], mac_key=TAK, timeout=WAIT) as conn:
                    c.sign_on(conn)
                    for _ in range(PAYMENTS):
                        conn.send(c.payment(account, 100))
                    # Committed: the answers now wait for their MACs from the slow HSM.
                    _eventually(
                        lambda led=ledger, acc=account: len(led.payments(acc)) == PAYMENTS,
                        "every payment committed",
                    )
                    proc.proc.send_signal(signal.SIGTERM)
                    _eventually(lambda: "stopping" in proc.log_text(), "the stop begun")
                    late = c.payment(account, 100)
                    try:
                        conn.send(late)  # a request during the stop is not taken
                    except OSError:
                        pass  # already closed: not taken either
                    answers = _answers_until_closed(conn)
                assert proc.proc.wait(timeout=WAIT) == 0
                committed = {row.id for row in ledger.payments(account)}
                assert len(committed) == PAYMENTS  # the late one moved nothing
                assert ledger.requests(late["11"], late["7"]) == []
                assert all(mac_ok(raw, TAK) for raw in answers)
                responses = [decode_message(raw) for raw in answers]
                assert [r["39"] for r in responses] == ["00"] * PAYMENTS
                assert {receipt(r) for r in responses} == committed
            finally:
                ledger.close()


def test_a_stop_waits_no_longer_than_stop_timeout(tmp_path: Path) -> None:
    """An HSM that never answers in time: the stop gives up after ``stop_timeout``.

    One backend: what is bounded is the wait for the HSM, not a database's.
    """
    extra = (
        '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
        '[hsm]\nurl = "{url}"\ntimeout = 600\n'
    )
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with (
        hsm_sim(tmp_path, 600) as hsm_url,
        started(tmp_path, url, extra.format(url=hsm_url), top_config="stop_timeout = 1") as proc,
    ):
        with IsoClient(proc.ports["atm_mac"], mac_key=TAK, timeout=WAIT) as conn:
            conn.send(c.network("001"))  # its MAC check waits for the HSM, far past the stop
            hsm_log = tmp_path / "hsm.log"
            _eventually(lambda: "answer delayed" in hsm_log.read_text(), "the MAC check sent")
            proc.proc.send_signal(signal.SIGTERM)
            assert _answers_until_closed(conn) == []
        assert proc.proc.wait(timeout=WAIT) == 0
        assert "stop timed out" in proc.log_text()
