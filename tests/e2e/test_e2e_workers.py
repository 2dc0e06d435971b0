"""Several worker processes sharing the channel ports (``billswitch run --workers 2``).

Each worker is a full node; the kernel spreads connections over them
(SO_REUSEPORT). What a terminal did through one worker (sign-on, a key
change, a payment) holds on the other, because it is in the database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from e2e_support import Ledger, backend_url, started

from tests import client as c
from tests.client import IsoClient, mac_ok
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

WORKERS = ["--workers", "2"]
TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
TMK = bytes.fromhex("0123456789ABCDEF1032547698BADCFE")
MAC_CHANNEL = '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
CONNECTIONS = 16  # all on one worker by chance: 2 ** -15


Switch = tuple[SwitchProcess, Ledger]


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Switch]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("workers")
    for url in backend_url(request.param, home):
        with started(home, url, MAC_CHANNEL, WORKERS) as proc:
            ledger = Ledger(url)
            try:
                yield proc, ledger
            finally:
                ledger.close()


def _workers_of(proc: SwitchProcess) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(proc.proc.pid)], capture_output=True, text=True)
    return sorted(int(pid) for pid in out.stdout.split())


def _worker_of_stan(proc: SwitchProcess, stan: str) -> str | None:
    """Which worker logged the transaction with this STAN (its ``worker=`` field)."""
    for line in proc.log_text().splitlines():
        if " txn " in line and f"stan={stan}" in line:
            found = re.search(r"\bworker=(\d+)", line)
            return found.group(1) if found else None
    return None


def _eventually(check: Callable[[], bool], what: str, within: float = 20.0) -> None:
    """A bounded wait for something that happens in the background (not a speed test)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.1)


def test_connections_are_spread_over_the_workers_and_each_payment_lands_once(
    switch: Switch,
) -> None:
    proc, ledger = switch
    assert len(_workers_of(proc)) == 2
    account = ledger.account(CONNECTIONS * 100)
    stans = []
    for _ in range(CONNECTIONS):
        with proc.client("atm") as conn:
            assert conn.call(c.network("001"))["39"] == "00"
            request = c.payment(account, 100)
            assert conn.call(request)["39"] == "00"
            stans.append(request["11"])
    assert ledger.due(account) == 0
    assert len(ledger.payments(account)) == CONNECTIONS
    _eventually(lambda: all(_worker_of_stan(proc, s) for s in stans), "every txn logged")
    assert {_worker_of_stan(proc, s) for s in stans} == {"0", "1"}


def test_a_sign_on_through_one_worker_holds_on_the_other(
    switch: Switch,
) -> None:
    proc, ledger = switch
    with proc.client("pos") as conn:
        assert conn.call(c.network("001", terminal="POS00003"))["39"] == "00"
    account = ledger.account(CONNECTIONS * 100)
    stans = []
    for _ in range(CONNECTIONS):
        with proc.client("pos") as conn:
            request = {**c.payment(account, 100), **c.terminal_fields("POS00003")}
            assert conn.call(request)["39"] == "00"
            stans.append(request["11"])
    _eventually(lambda: all(_worker_of_stan(proc, s) for s in stans), "every txn logged")
    assert {_worker_of_stan(proc, s) for s in stans} == {"0", "1"}
    with proc.client("pos") as conn:  # a sign-off is seen by every worker (within seconds)
        assert conn.call(c.network("002", terminal="POS00003"))["39"] == "00"

    def declined_everywhere() -> bool:
        codes = set()
        for _ in range(CONNECTIONS):
            with proc.client("pos") as conn:
                request = {**c.payment(account, 1), **c.terminal_fields("POS00003")}
                codes.add(conn.call(request)["39"])
        return codes == {"03"}

    _eventually(declined_everywhere, "the sign-off reached both workers")


def test_a_key_changed_through_one_worker_works_on_the_other(
    switch: Switch,
) -> None:
    from hsm_sim.crypto.des import decrypt_ecb
    from iso.bill_data import parse_bill_data
    from iso.dialect import decode_message

    proc, ledger = switch
    with IsoClient(proc.ports["atm_mac"], mac_key=TAK) as conn:
        conn.send(c.network("001"))
        assert decode_message(conn.recv_raw())["39"] == "00"
        conn.send({**c.network("161"), "53": "0002000000000000"})
        tags = parse_bill_data(decode_message(conn.recv_raw())["48"])
    new_tak = decrypt_ecb(TMK, bytes.fromhex(tags["KY"]))
    account = ledger.account(1_000_000)

    def new_key_works_on_every_connection() -> bool:
        for _ in range(CONNECTIONS):
            with IsoClient(proc.ports["atm_mac"], mac_key=new_tak) as conn:
                conn.send(c.payment(account, 1))
                raw = conn.recv_raw()
                if decode_message(raw)["39"] != "00" or not mac_ok(raw, new_tak):
                    return False
        return True

    _eventually(new_key_works_on_every_connection, "the new TAK known to both workers")


def test_a_dead_worker_is_started_again_and_stop_ends_them_all(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with started(tmp_path, url, args=WORKERS) as proc:
        first = _workers_of(proc)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        _eventually(
            lambda: len(_workers_of(proc)) == 2 and first[0] not in _workers_of(proc),
            "a new worker",
        )
        assert "worker died; starting it again" in proc.log_text()
        for _ in range(CONNECTIONS):  # every connection lands on a live worker
            with proc.client("atm") as conn:
                assert conn.call(c.network("001"))["39"] == "00"
        workers = _workers_of(proc)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=60) == 0
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1].startswith("Z")
