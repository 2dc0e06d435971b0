"""Fixtures of the end-to-end suite: a real switch process per module and backend.

``switch`` here shadows the top-level fixture of the same name: the same real
``billswitch run`` process (demo data, ephemeral ports, SQLite and PostgreSQL),
plus two extra channels the framing tests need:

- ``pos_ascii``: a POS channel with a 4-digit ASCII length and a 5-byte TPDU;
- ``atm_idle``: an ATM channel that closes connections silent for 1 second;
- ``atm_mac``: an ATM channel that requires an X9.19 MAC (as the embedded defaults do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2e_support import Ledger, backend_url, sign_on_all, started

from loadtest.biller_process import BillerSimProcess
from tests.client import IsoClient, sign_on
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

EXTRA_CHANNELS = """
[channels.pos_ascii]
kind = "POS"
port = 0
framing = "ascii4"
tpdu = true
[channels.atm_idle]
kind = "ATM"
port = 0
idle_timeout = 1
[channels.atm_mac]
kind = "ATM"
port = 0
mac = "x919"
"""


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SwitchProcess]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("e2e")
    for url in backend_url(request.param, home):
        with started(home, url, EXTRA_CHANNELS) as proc:
            sign_on_all(proc)
            yield proc


@pytest.fixture(scope="module")
def ledger(switch: SwitchProcess) -> Iterator[Ledger]:
    """The switch's database, read (and seeded with debts) through SQLAlchemy."""
    led = Ledger(switch.db_url)
    yield led
    led.close()


@pytest.fixture
def atm(switch: SwitchProcess) -> Iterator[IsoClient]:
    """A connection on the ATM channel; ATM00001 is signed on."""
    with switch.client("atm") as client:
        yield client


@pytest.fixture
def pos(switch: SwitchProcess) -> Iterator[IsoClient]:
    """A connection on the POS channel; POS00001 is signed on."""
    with switch.client("pos") as client:
        yield client


@pytest.fixture
def host(switch: SwitchProcess) -> Iterator[IsoClient]:
    """A connection on the HOST channel; the link of acquirer 200002 is signed on."""
    with switch.client("host") as client:
        sign_on(client, terminal="", acquirer="200002")
        yield client


# -- online billers: for modules whose ``stack`` fixture is (switch, biller server) ----


@pytest.fixture(scope="module")
def sim(stack: tuple[SwitchProcess, BillerSimProcess]) -> BillerSimProcess:
    """The module's reference biller server."""
    return stack[1]


@pytest.fixture
def faults(sim: BillerSimProcess) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """Set a biller's faults for one test; cleared after it."""
    touched: set[str] = set()

    def set_faults(code: str, value: dict[str, Any]) -> None:
        touched.add(code)
        sim.control(code, value)

    yield set_faults
    for code in touched:
        sim.control(code, {})
