"""MAC on a channel that requires it (X9.19 with the demo TAK of ATM00001), over real TCP.

The demo TAK is published for test clients (README); the client MACs with our
crypto module, which is checked against published vectors in tests/hsm_crypto.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select

from iso.dialect import decode_message
from switch.ledger import schema as s
from tests import client as c
from tests.client import IsoClient, mac_ok
from tests.switch_process import SwitchProcess

TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
MAC_CHANNEL = '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    home = tmp_path_factory.mktemp("mac")
    with SwitchProcess.start(home, f"sqlite:///{home / 'ledger.db'}", MAC_CHANNEL) as proc:
        yield proc


def _payments(proc: SwitchProcess) -> int:
    engine = create_engine(proc.db_url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(s.payments)).scalar_one()
    engine.dispose()
    return count


def _call(conn: IsoClient, fields: dict[str, str]) -> tuple[dict[str, str], bytes]:
    conn.send(fields)
    raw = conn.recv_raw()
    return decode_message(raw), raw


def test_macd_requests_are_served_and_answers_are_macd(switch: SwitchProcess) -> None:
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        response, raw = _call(conn, c.network("001"))
        assert response["39"] == "00"
        assert "128" in response and mac_ok(raw, TAK)  # DE 70 needs the secondary bitmap
        response, raw = _call(conn, c.payment("1000002", 700))
        assert response["39"] == "00" and "64" in response and mac_ok(raw, TAK)
        # A reversal has a secondary bitmap: its MAC goes in DE 128.
        payment = c.payment("1000002", 300)
        assert _call(conn, payment)[0]["39"] == "00"
        response, raw = _call(conn, c.reversal(payment))
        assert response["39"] == "00" and "128" in response and mac_ok(raw, TAK)


@pytest.mark.parametrize("problem", ["missing", "wrong"])
def test_missing_or_wrong_mac_gets_63_and_moves_no_money(
    switch: SwitchProcess, problem: str
) -> None:
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        assert _call(conn, c.network("001"))[0]["39"] == "00"
    before = _payments(switch)
    request = c.payment("1000002", 100)
    if problem == "wrong":
        request = {**c.with_mac(request, TAK)}
        request["64"] = "0123456789ABCDEF"
    with IsoClient(switch.ports["atm_mac"]) as conn:
        response, raw = _call(conn, request)
    assert response["39"] == "63"
    assert "64" not in response and "128" not in response  # no MAC oracle: 63 goes unMACed
    assert _payments(switch) == before


def test_no_mac_oracle_for_requests_refused_before_their_mac(switch: SwitchProcess) -> None:
    """An unsupported processing code (12) is decided before the MAC check: its answer,
    which echoes fields the sender chose, must not come back MACed under the terminal's
    key either (else anyone could collect valid MACs over chosen data)."""
    request = c.payment("1000002", 100)
    request["3"] = "990000"  # not a bill payment or inquiry
    request["64"] = "0123456789ABCDEF"  # a guess
    with IsoClient(switch.ports["atm_mac"]) as conn:
        response, _ = _call(conn, request)
    assert response["39"] == "12"
    assert "64" not in response and "128" not in response


def test_terminal_without_a_mac_key_gets_63(switch: SwitchProcess) -> None:
    """Its request cannot be authenticated (63, unsigned); the operator is told which key
    is missing (an error line with owner and key type)."""
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        response, _ = _call(conn, c.network("001", terminal="ATM00002"))
    assert response["39"] == "63" and "128" not in response
    deadline = time.monotonic() + 30
    while "operator action needed" not in switch.log_text():
        assert time.monotonic() < deadline, "no operator line"
        time.sleep(0.05)
    lines = [line for line in switch.log_text().splitlines() if "operator action needed" in line]
    assert any("no TAK for 100001:ATM00002" in line and "[error" in line for line in lines)


TMK = bytes.fromhex("0123456789ABCDEF1032547698BADCFE")  # demo, test-only


def test_key_change_gives_a_new_tak_under_the_tmk(tmp_path_factory: pytest.TempPathFactory) -> None:
    """0800/161: the new TAK arrives under the TMK with its check value; the new key works
    at once and the old one keeps working during the grace period."""
    from hsm_sim.crypto.des import decrypt_ecb
    from hsm_sim.crypto.kcv import kcv_des
    from iso.bill_data import parse_bill_data

    home = tmp_path_factory.mktemp("keychange")
    with SwitchProcess.start(home, f"sqlite:///{home / 'ledger.db'}", MAC_CHANNEL) as proc:
        with IsoClient(proc.ports["atm_mac"], mac_key=TAK) as conn:
            assert _call(conn, c.network("001"))[0]["39"] == "00"
            response, raw = _call(conn, {**c.network("161"), "53": "0002000000000000"})
            assert response["39"] == "00" and mac_ok(raw, TAK)  # answered under the old key
            tags = parse_bill_data(response["48"])
            new_tak = decrypt_ecb(TMK, bytes.fromhex(tags["KY"]))
            assert kcv_des(new_tak)[:3].hex().upper() == tags["KC"]
            assert new_tak != TAK
        with IsoClient(proc.ports["atm_mac"], mac_key=new_tak) as conn:
            response, raw = _call(conn, c.payment("1000002", 100))
            assert response["39"] == "00" and mac_ok(raw, new_tak)
        with IsoClient(proc.ports["atm_mac"], mac_key=TAK) as conn:  # in flight: grace
            response, raw = _call(conn, c.payment("1000002", 100))
            assert response["39"] == "00" and mac_ok(raw, TAK)
        engine = create_engine(proc.db_url)
        with engine.connect() as db:
            states = (
                db.execute(
                    select(s.keys.c.state).where(s.keys.c.key_type == "TAK").order_by(s.keys.c.id)
                )
                .scalars()
                .all()
            )
        engine.dispose()
        assert states == ["retiring", "active"]


def test_key_change_needs_a_valid_key_index(switch: SwitchProcess) -> None:
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        response, _ = _call(conn, {**c.network("161"), "53": "0009000000000000"})
    assert response["39"] == "30"
