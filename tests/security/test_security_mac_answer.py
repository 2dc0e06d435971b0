"""A MACed answer is encoded once: its bytes are what encoding its fields gives, MAC right.

The MAC is checked here by an independent computation (the crypto module with
the clear key), not by the HSM that made it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail

from hsm_sim.crypto import lmk
from hsm_sim.crypto.mac import iso9797_alg3
from hsm_sim.interface import TAK, HsmTimeout, KeyUnderLmk
from hsm_sim.software import SoftwareHsm
from iso.dialect import Encoded, decode_message, encode_message, mac_input
from switch.ledger.reference import Terminal
from switch.security import mac
from switch.security.keystore import KeyRing, StoredKey, owner_of
from switch.transaction import Origin, Transaction

TAK_CLEAR = bytes.fromhex("7CA110454A1A6E570131D9619DC1376E")
TAK_KEY = KeyUnderLmk(TAK, lmk.encrypt_key(lmk.TEST_LMK, TAK, TAK_CLEAR, "U"))
TERMINAL = Terminal("12345678901", "ATM00001", "atm", None, True)
REQUEST = {
    "t": "0200", "3": "500000", "4": "000000005000", "7": "1122063000", "11": "123456",
    "12": "063000", "13": "1122", "32": "12345678901", "37": "000000123456",
    "41": "ATM00001", "49": "840",
}  # fmt: skip


def _services(hsm: Any) -> Any:
    ring = KeyRing(
        (StoredKey(1, owner_of("12345678901", "ATM00001"), "TAK", TAK_KEY, "active", None),)
    )
    return SimpleNamespace(hsm=hsm, keys=lambda: ring)


def _transaction(request: dict[str, str], mac_kind: str = "x919") -> Transaction:
    """A request whose MAC verified under TAK_KEY (what check_mac leaves behind)."""
    t = Transaction(request, Origin("atm", "ATM", "peer", mac_kind), datetime.now(UTC))
    t.terminal = TERMINAL
    t.mac_key = TAK_KEY
    return t


def test_an_answer_to_an_unverified_request_is_not_maced() -> None:
    """No MAC oracle: the terminal has an active TAK, but this request's MAC did not
    verify (a 63, or a decline before the check), so its answer goes as it is."""
    t = _transaction(REQUEST)
    t.mac_key = None
    response = t.response("63", {})
    assert _run(mac.sign(t, _services(SoftwareHsm()), response)) == response


def _run(coroutine: Any) -> Any:
    results: list[Any] = []
    Deferred.fromCoroutine(coroutine).addBoth(results.append)
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


@pytest.mark.parametrize(
    ("out", "de"), [({"38": "123456"}, "64"), ({"95": "0" * 42}, "128")], ids=["de64", "de128"]
)
def test_signed_answer_is_encoded_once_and_its_mac_verifies(out: dict[str, str], de: str) -> None:
    t = _transaction(REQUEST)
    response = t.response("00", out)
    answer = _run(mac.sign(t, _services(SoftwareHsm()), response))
    assert isinstance(answer, Encoded)
    assert answer.raw == encode_message(answer.fields)
    assert set(answer.fields) - set(response) == {de}
    expected = iso9797_alg3(TAK_CLEAR, mac_input(answer.raw), 1).hex().upper()
    assert answer.fields[de] == expected
    assert answer.raw[-8:].hex().upper() == expected
    assert decode_message(answer.raw)[de] == expected


def test_an_old_mac_in_the_response_is_replaced() -> None:
    t = _transaction(REQUEST)
    response = t.response("00", {}) | {"64": "FFFFFFFFFFFFFFFF"}
    answer = _run(mac.sign(t, _services(SoftwareHsm()), response))
    assert answer.raw == encode_message(answer.fields)
    assert answer.fields["64"] == iso9797_alg3(TAK_CLEAR, mac_input(answer.raw), 1).hex().upper()


def test_channels_without_mac_get_the_fields_back() -> None:
    t = _transaction(REQUEST, mac_kind="none")
    response = t.response("00", {})
    assert _run(mac.sign(t, _services(SoftwareHsm()), response)) is response


def test_an_hsm_failure_while_signing_is_raised() -> None:
    class Down:
        def generate_mac(self, *args: Any) -> Deferred[str]:
            return fail(HsmTimeout("no answer"))

    t = _transaction(REQUEST)
    with pytest.raises(HsmTimeout):
        _run(mac.sign(t, _services(Down()), t.response("00", {})))
