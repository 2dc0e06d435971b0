"""PIN block formats as a PCI-configured payShield takes them (issue 9, item 6).

Enabled: ISO 0 (01) and ISO 3 (47), which bind the PIN to the PAN. ISO 1 (05)
binds it to nothing: it is disabled (error 69, "PIN block format disabled")
unless enabled explicitly, and even then a PAN-bound block is never
translated to it (PCI PIN Security Requirement 3-3); ISO 1 to ISO 0 or 3 is
allowed. Each test runs on the software HSM and, over real TCP, on the
simulator through the client; the wire tests read the simulator's bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hsm_sim.client import PayShieldClient
from hsm_sim.crypto import des, pinblock
from hsm_sim.interface import TPK, ZPK, PinBlock, PinBlockFormatDisabled
from hsm_sim.server import HsmServerFactory, listen
from hsm_sim.software import HsmCore, SoftwareHsm
from tests.hsm.conftest import Simulator
from tests.hsm.hsm_support import Blocking, ReactorThread, exchange, under_lmk

H = bytes.fromhex

DEMO_TPK = "0123456789ABCDEFFEDCBA9876543210"
ZPK_CLEAR = "4CF15134A2850DD58A3D10BA80570D38"
PVK_CLEAR = "0123456789ABCDEFFEDCBA9876543210"  # the psec PVK
PAN = "1122334455667788"  # psec's PVV vector: PVKI 1, PIN 4524 -> PVV 8523
PIN = "4524"
ACCOUNT = pinblock.pan_digits_12(PAN)

TPK_KEY = under_lmk(TPK, DEMO_TPK)
ZPK_KEY = under_lmk(ZPK, ZPK_CLEAR)
PVK_KEY = under_lmk("002", PVK_CLEAR)
WITH_ISO1 = frozenset({"01", "05", "47"})


def under_tpk(clear: bytes) -> str:
    return des.encrypt_ecb(H(DEMO_TPK), clear).hex().upper()


ISO0 = PinBlock(under_tpk(pinblock.make_iso0(PIN, PAN)), "01")
ISO1 = PinBlock(under_tpk(pinblock.make_iso1(PIN)), "05")
ISO3 = PinBlock(under_tpk(pinblock.make_iso3(PIN, PAN)), "47")


def read(block: PinBlock) -> str:
    """The PIN in a block under the ZPK, read by the format it says it has."""
    clear = des.decrypt_ecb(H(ZPK_CLEAR), H(block.value))
    readers = {
        "01": lambda: pinblock.read_iso0(clear, PAN),
        "05": lambda: pinblock.read_iso1(clear),
        "47": lambda: pinblock.read_iso3(clear, PAN),
    }
    return readers[block.format_code]()


@pytest.fixture(params=["software", "client"])
def hsm_with_iso1(
    request: pytest.FixtureRequest, reactor_thread: ReactorThread
) -> Iterator[Blocking]:
    """Each implementation, on an HSM whose owner enabled ISO 1 explicitly."""
    if request.param == "software":
        yield Blocking(SoftwareHsm(pin_formats=WITH_ISO1), reactor_thread)
        return
    factory = HsmServerFactory(HsmCore(pin_formats=WITH_ISO1))
    listening = reactor_thread.call(listen, reactor_thread.reactor, factory, "127.0.0.1", 0)
    client = PayShieldClient(f"tcp://127.0.0.1:{listening.getHost().port}", reactor_thread.reactor)
    yield Blocking(client, reactor_thread)
    reactor_thread.call(client.close)
    reactor_thread.call(listening.stopListening)


# ---------------------------------------------------------------- as configured by default


@pytest.mark.parametrize("block", [ISO0, ISO3], ids=["iso0", "iso3"])
def test_hsm_pan_bound_formats_are_verified(hsm: Blocking, block: PinBlock) -> None:
    assert hsm.verify_pin_pvv(TPK_KEY, PVK_KEY, block, PAN, 1, "8523") is True


def test_hsm_iso1_block_is_refused_for_verification(hsm: Blocking) -> None:
    with pytest.raises(PinBlockFormatDisabled) as raised:
        hsm.verify_pin_pvv(TPK_KEY, PVK_KEY, ISO1, PAN, 1, "8523")
    assert raised.value.code == "69"


@pytest.mark.parametrize(
    ("block", "destination"),
    [(ISO1, "01"), (ISO1, "47"), (ISO0, "05"), (ISO3, "05")],
    ids=["iso1-to-iso0", "iso1-to-iso3", "iso0-to-iso1", "iso3-to-iso1"],
)
def test_hsm_iso1_is_disabled_for_translation(
    hsm: Blocking, block: PinBlock, destination: str
) -> None:
    with pytest.raises(PinBlockFormatDisabled) as raised:
        hsm.translate_pin(TPK_KEY, ZPK_KEY, block, PAN, destination)
    assert raised.value.code == "69"


@pytest.mark.parametrize(
    ("block", "destination"),
    [(ISO0, "01"), (ISO0, "47"), (ISO3, "01"), (ISO3, "47")],
    ids=["iso0-to-iso0", "iso0-to-iso3", "iso3-to-iso0", "iso3-to-iso3"],
)
def test_hsm_pan_bound_formats_translate_among_themselves(
    hsm: Blocking, block: PinBlock, destination: str
) -> None:
    answer = hsm.translate_pin(TPK_KEY, ZPK_KEY, block, PAN, destination)
    assert answer.pin_block.format_code == destination
    assert read(answer.pin_block) == PIN


# ---------------------------------------------------------------- ISO 1 enabled explicitly


@pytest.mark.parametrize("destination", ["01", "47", "05"])
def test_hsm_iso1_may_become_any_format_once_enabled(
    hsm_with_iso1: Blocking, destination: str
) -> None:
    answer = hsm_with_iso1.translate_pin(TPK_KEY, ZPK_KEY, ISO1, PAN, destination)
    assert answer.pin_block.format_code == destination
    assert read(answer.pin_block) == PIN


@pytest.mark.parametrize("block", [ISO0, ISO3], ids=["iso0", "iso3"])
def test_hsm_pan_bound_block_never_becomes_iso1(hsm_with_iso1: Blocking, block: PinBlock) -> None:
    """PCI PIN 3-3: a block bound to the PAN is never translated to one bound to nothing."""
    with pytest.raises(PinBlockFormatDisabled) as raised:
        hsm_with_iso1.translate_pin(TPK_KEY, ZPK_KEY, block, PAN, "05")
    assert raised.value.code == "69"


def test_hsm_cannot_enable_a_format_it_cannot_read() -> None:
    with pytest.raises(ValueError):
        HsmCore(pin_formats=frozenset({"01", "48"}))


# ---------------------------------------------------------------- the simulator's bytes


def ask(simulator: Simulator, command: str) -> str:
    return exchange(simulator.port, ("0001" + command).encode("latin-1")).decode("latin-1")


@pytest.mark.parametrize(
    ("block", "source", "destination"),
    [(ISO1.value, "05", "01"), (ISO0.value, "01", "05")],
    ids=["from-iso1", "to-iso1"],
)
def test_hsm_ca_with_iso1_is_answered_69(
    simulator: Simulator, block: str, source: str, destination: str
) -> None:
    request = f"CA{TPK_KEY.value}{ZPK_KEY.value}12{block}{source}{destination}{ACCOUNT}"
    assert ask(simulator, request) == "0001CB69"


def test_hsm_dc_with_iso1_is_answered_69(simulator: Simulator) -> None:
    request = f"DC{TPK_KEY.value}{PVK_KEY.value}{ISO1.value}05{ACCOUNT}18523"
    assert ask(simulator, request) == "0001DD69"
