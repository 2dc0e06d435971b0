"""The generator's MAC and on-us card fields, checked against the project's crypto.

Test-only demo values (README): TAK and TPK of ATM00001, card 9990001000000001
with PIN 1234.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from hsm_sim.crypto.des import decrypt_ecb
from hsm_sim.crypto.mac import iso9797_alg3
from hsm_sim.crypto.pinblock import make_iso0
from iso.dialect import decode_message, encode_message
from iso.framing import BINARY2, encode_frame
from loadtest import security, workload
from loadtest.client import BAD_MAC, Framing, Reply, TerminalProtocol, WireCounters
from loadtest.config import RunConfig, parse_terminals
from loadtest.identity import identities
from loadtest.stats import OK, Outcome, Recorder, Window

TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PAN, PIN = "9990001000000001", "1234"
ATM = identities("atm")[0]
WHEN = workload.stamp_at(datetime(2026, 11, 21, 9, 8, 7, tzinfo=UTC), datetime(2026, 11, 21, 9))


def header(stan: str = "000123") -> workload.Header:
    return workload.Header(ATM, stan, WHEN, "263250000001")


def test_payment_mac_is_x919_over_everything_before_de_64() -> None:
    raw = security.signed_message(workload.payment(header(), "1000002", 50), TAK)
    fields = decode_message(raw)
    assert "64" in fields and "128" not in fields
    assert iso9797_alg3(TAK, raw[:-8], 1) == raw[-8:]
    assert security.mac_ok(raw, fields, TAK)


def test_a_secondary_bitmap_puts_the_mac_in_de_128() -> None:
    first = header()
    original = workload.Original(first, "1000002", 50, 7)
    raw = security.signed_message(workload.reversal(header("000124"), original), TAK)
    fields = decode_message(raw)
    assert "128" in fields and "64" not in fields
    assert security.mac_ok(raw, fields, TAK)


def test_a_wrong_key_tampering_or_no_mac_fails() -> None:
    fields = workload.payment(header(), "1000002", 50)
    raw = security.signed_message(fields, TAK)
    assert not security.mac_ok(raw, decode_message(raw), TPK)
    tampered = raw.replace(b"1000002", b"1000003")
    assert not security.mac_ok(tampered, decode_message(tampered), TAK)
    plain = encode_message(workload.payment(header(), "1000002", 50))
    assert not security.mac_ok(plain, decode_message(plain), TAK)


def test_on_us_payment_carries_pan_iso0_pin_block_and_de_53() -> None:
    card = security.on_us_card(PAN, PIN, TPK)
    fields = workload.payment(header(), "1000002", 1, card=card)
    assert fields["2"] == PAN and fields["53"] == "0100000000000000"
    assert decrypt_ecb(TPK, bytes.fromhex(fields["52"])) == make_iso0(PIN, PAN)
    decoded = decode_message(security.signed_message(fields, TAK))
    assert decoded["52"] == card.pin_block and decoded["2"] == PAN


@pytest.mark.parametrize(
    ("text", "problem"),
    [("9990001000000001", "PAN:PIN"), ("999:1234", "PAN:PIN"), ("9990001000000001:12", "PIN")],
)
def test_bad_cards_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        security.parse_card(text)


def test_bad_keys_are_refused_without_quoting_them() -> None:
    for text in ("FEDCBA9876543210", "XYZ" * 11):
        with pytest.raises(ValueError) as caught:
            security.parse_key(text, security.MAC_KEY_LENGTHS)
        assert text not in str(caught.value)
    assert security.parse_key(TPK.hex(), security.PIN_KEY_LENGTHS) == TPK


def test_terminals_restrict_the_identities() -> None:
    only = parse_terminals("ATM00001, ATM00003")
    assert [i.terminal for i in identities("atm", only)] == ["ATM00001", "ATM00003"]
    with pytest.raises(ValueError, match="ATM00009"):
        RunConfig(terminals=("ATM00009",)).validate()
    with pytest.raises(ValueError, match="host"):
        RunConfig(channel="host", terminals=("ATM00001",)).validate()


def test_keys_stay_out_of_the_config_repr() -> None:
    cfg = RunConfig(mac_key=TAK, on_us=security.on_us_card(PAN, PIN, TPK))
    assert TAK.hex().upper() not in repr(cfg).upper() and PAN not in repr(cfg)


class _Transport(StringTransport):
    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
        pass


def _answer(request: dict[str, str], key: bytes) -> bytes:
    response = dict(request, t="0210", **{"39": "00"})
    return encode_frame(BINARY2, security.signed_message(response, key))


@pytest.mark.parametrize(("key", "status"), [(TAK, OK), (TPK, BAD_MAC)])
def test_responses_are_verified_and_a_bad_mac_is_an_error(key: bytes, status: str) -> None:
    clock = Clock()
    conn = TerminalProtocol(ATM, Framing(BINARY2, mac_key=TAK), clock, 5.0, WireCounters())
    conn.makeConnection(_Transport())
    request = workload.payment(header(), "1000002", 50)
    replies: list[Reply] = []
    conn.request(request).addCallback(replies.append)
    conn.dataReceived(_answer(request, key))
    assert [r.status for r in replies] == [status]
    recorder = Recorder(Window(0.0, 1.0))
    recorder.record(Outcome("payment", 0.0, 0.0, replies[0].status, "00"))
    assert recorder.summary()["errors"] == ({} if status == OK else {"bad_mac": 1})
