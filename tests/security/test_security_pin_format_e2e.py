"""An on-us payment whose PIN block is ISO format 1 (DE 53 = 05) gets 30 (issue 9, item 6).

ISO 1 binds the PIN to no PAN, so the HSM refuses it (error 69, format
disabled) and the switch answers 30 as for any PIN format the spec does not
take, with the right PIN inside, counting no try and moving no money.
Test-only demo values (README): card 9990001000000001, PIN 1234, the
terminal's demo TPK.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, func, select

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.pinblock import make_iso0, make_iso1
from switch.ledger import schema as s
from tests import client as c
from tests.client import IsoClient
from tests.conftest import BACKENDS, backend_url
from tests.security.test_security_on_us_e2e import MAC_CHANNEL, PAN, TAK, TPK
from tests.switch_process import SwitchProcess


@pytest.fixture(params=BACKENDS)
def switch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    home = tmp_path_factory.mktemp("pinformat")
    for url in backend_url(request.param, home):
        with SwitchProcess.start(home, url, MAC_CHANNEL) as proc:
            yield proc


def _pay(conn: IsoClient, clear_block: bytes, control: str) -> str:
    request = c.payment("1000002", 1000)
    block = encrypt_ecb(TPK, clear_block).hex().upper()
    request.update({"2": PAN, "52": block, "53": control, "14": "3012"})
    return conn.call(request)["39"]


def _tries_and_payments(proc: SwitchProcess) -> tuple[int, int]:
    engine = create_engine(proc.db_url)
    with engine.connect() as db:
        tries = db.execute(select(s.pin_tries.c.tries)).scalar_one()
        payments = db.execute(select(func.count()).select_from(s.payments)).scalar_one()
    engine.dispose()
    return tries, payments


def test_iso1_pin_block_gets_30_and_moves_no_money(switch: SwitchProcess) -> None:
    iso1 = make_iso1("1234")  # the right PIN, in a block tied to no PAN
    with IsoClient(switch.ports["atm_mac"], mac_key=TAK) as conn:
        c.sign_on(conn)
        assert [_pay(conn, iso1, "0500000000000000") for _ in range(4)] == ["30"] * 4
        assert _tries_and_payments(switch) == (0, 0)  # no try counted, nothing paid
        assert _pay(conn, make_iso0("1234", PAN), "0100000000000000") == "00"
    assert _tries_and_payments(switch) == (0, 1)
