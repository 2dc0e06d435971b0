"""PIN tries cannot be outrun (issue 9 item 4), over TCP against real switch processes.

Every try is reserved in the card's `pin_tries` row before the HSM verifies it, so requests in
flight together, on one connection or on two nodes sharing the database, get at
most ``[issuer] pin_tries`` (3) verifications between them: the rest is 75 at once.
Test-only demo values (README): card 9990001000000001, PIN 1234, ATM00001's TPK.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, update

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.pinblock import make_iso0
from switch.ledger import schema as s
from tests import client as c
from tests.client import IsoClient
from tests.conftest import BACKENDS, backend_url
from tests.e2e.e2e_support import two_nodes
from tests.security.test_security_hsm_tcp_e2e import simulator
from tests.switch_process import SwitchProcess

TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PAN = "9990001000000001"
LIMIT = 3  # [issuer] pin_tries by default


@pytest.fixture(params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SwitchProcess]:
    for url in backend_url(request.param, tmp_path):
        with SwitchProcess.start(tmp_path, url) as proc:
            yield proc


def _pin_payment(pin: str, amount: int = 1000) -> dict[str, str]:
    request = c.payment("1000002", amount)
    block = encrypt_ecb(TPK, make_iso0(pin, PAN)).hex().upper()
    return request | {"2": PAN, "52": block, "53": "0100000000000000", "14": "3012"}


def _pipelined(conn: IsoClient, requests: list[dict[str, str]]) -> list[str]:
    """Send every request before reading any answer; the codes in request order."""
    for request in requests:
        conn.send(request)
    answers = [conn.recv() for _ in requests]
    by_stan = {a["11"]: a["39"] for a in answers}
    return [by_stan[r["11"]] for r in requests]


def _tries_and_money(url: str) -> tuple[int, int, int]:
    """The card's wrong PIN tries, its wallet's funds and the number of payments; no try
    is left in flight (every answer was read)."""
    engine = create_engine(url)
    with engine.connect() as db:
        tries, pending, funds = db.execute(
            select(s.pin_tries.c.tries, s.pin_tries.c.pending, s.cards.c.funds).join(s.cards)
        ).one()
        payments = db.execute(select(func.count()).select_from(s.payments)).scalar_one()
    engine.dispose()
    assert pending == 0
    return tries, funds, payments


def test_pipelined_wrong_pins_cannot_outrun_the_limit(switch: SwitchProcess) -> None:
    """Eleven wrong PINs and then the right one, all sent before any answer is read:
    three wrong ones reach the HSM (55, the third 75 as it blocks the card), everything
    else is 75, the right PIN included; the count is 3 and no money moved."""
    requests = [_pin_payment("0000") for _ in range(11)] + [_pin_payment("1234")]
    with switch.client("atm") as conn:
        c.sign_on(conn)
        codes = _pipelined(conn, requests)
    wrong, right = codes[:-1], codes[-1]
    assert sorted(wrong) == ["55"] * (LIMIT - 1) + ["75"] * (len(wrong) - LIMIT + 1), codes
    assert right == "75"
    assert _tries_and_money(switch.db_url) == (LIMIT, 1_000_000, 0)


def test_a_right_pin_after_a_wrong_one_pays_and_resets_the_count(switch: SwitchProcess) -> None:
    with switch.client("atm") as conn:
        c.sign_on(conn)
        assert conn.call(_pin_payment("0000"))["39"] == "55"
        assert _tries_and_money(switch.db_url)[0] == 1
        assert conn.call(_pin_payment("1234", 500))["39"] == "00"
    assert _tries_and_money(switch.db_url) == (0, 1_000_000 - 500, 1)


def test_a_card_blocked_in_the_database_is_blocked_at_once_despite_the_cache(
    switch: SwitchProcess,
) -> None:
    """The node has the card cached (it just paid); the row says blocked (another node's
    tries): the reservation finds no try left, so the right PIN is 75 and not verified."""
    with switch.client("atm") as conn:
        c.sign_on(conn)
        assert conn.call(_pin_payment("1234", 500))["39"] == "00"
        engine = create_engine(switch.db_url)
        with engine.begin() as db:
            db.execute(update(s.pin_tries).values(tries=LIMIT))
        engine.dispose()
        assert conn.call(_pin_payment("1234", 500))["39"] == "75"
    assert _tries_and_money(switch.db_url) == (LIMIT, 1_000_000 - 500, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_nodes_share_one_count(backend: str, tmp_path: Path) -> None:
    """Eleven wrong PINs spread over two nodes on one database, pipelined on both at once:
    three verifications between them, the card is blocked on both, no money moves."""
    with two_nodes(tmp_path, backend) as (a, b, _):
        with a.client("atm") as on_a, b.client("atm") as on_b:
            to_a = [_pin_payment("0000") for _ in range(6)]
            to_b = [_pin_payment("0000") for _ in range(5)]
            for request in to_a:
                on_a.send(request)
            for request in to_b:
                on_b.send(request)
            codes = [on_a.recv()["39"] for _ in to_a] + [on_b.recv()["39"] for _ in to_b]
            expected = ["55"] * (LIMIT - 1) + ["75"] * (len(codes) - LIMIT + 1)
            assert sorted(codes) == expected, codes
            assert on_a.call(_pin_payment("1234"))["39"] == "75"
            assert on_b.call(_pin_payment("1234"))["39"] == "75"
        assert _tries_and_money(a.db_url) == (LIMIT, 1_000_000, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_nodes_pipelined_wrong_pins_then_the_right_one(backend: str, tmp_path: Path) -> None:
    """The issue's probe on each of two nodes at once: the right PINs are 75 on both."""
    with two_nodes(tmp_path, backend) as (a, b, _):
        with a.client("atm") as on_a, b.client("atm") as on_b:
            requests = {
                conn: [_pin_payment("0000") for _ in range(11)] + [_pin_payment("1234")]
                for conn in (on_a, on_b)
            }
            for conn, sent in requests.items():
                for request in sent:
                    conn.send(request)
            codes = {conn: [conn.recv() for _ in sent] for conn, sent in requests.items()}
            for conn, sent in requests.items():
                by_stan = {answer["11"]: answer["39"] for answer in codes[conn]}
                assert by_stan[sent[-1]["11"]] == "75"
            every = [x["39"] for answers in codes.values() for x in answers]
            assert every.count("55") == LIMIT - 1 and "00" not in every, every
        assert _tries_and_money(a.db_url) == (LIMIT, 1_000_000, 0)


def test_right_pins_beyond_the_limit_in_flight_all_pay(switch: SwitchProcess) -> None:
    """Ten right PINs of one card pipelined: at most three are verified at a time (the
    tries the card has), the others wait for a try to come back, and all are paid."""
    with switch.client("atm") as conn:
        c.sign_on(conn)
        codes = _pipelined(conn, [_pin_payment("1234", 100) for _ in range(10)])
    assert codes == ["00"] * 10
    assert _tries_and_money(switch.db_url) == (0, 1_000_000 - 1000, 10)


def test_an_hsm_failure_during_verification_counts_no_try(tmp_path: Path) -> None:
    """One wrong PIN is counted; then the HSM (a simulator over TCP) goes away: the PIN
    payment gets 96 and the try reserved for it is given back (the count stays 1)."""
    with simulator(tmp_path) as (port, hsm):
        extra = f'[hsm]\nurl = "tcp://127.0.0.1:{port}"\ntimeout = 0.5\n'
        with SwitchProcess.start(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", extra) as proc:
            with proc.client("atm") as conn:
                c.sign_on(conn)
                assert conn.call(_pin_payment("0000"))["39"] == "55"
                hsm.send_signal(signal.SIGTERM)
                hsm.wait(timeout=20)
                assert [conn.call(_pin_payment("1234"))["39"] for _ in range(4)] == ["96"] * 4
            assert _tries_and_money(proc.db_url) == (1, 1_000_000, 0)
