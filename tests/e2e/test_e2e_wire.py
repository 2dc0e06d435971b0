"""Frames written byte by byte from the spec, read back by hand (spec sections 1, 2 and 4).

Every other end-to-end test talks through ``tests/client.py``, which builds,
parses and MACs with the switch's own codec (``iso/``, pyiso8583, hsm_sim):
a field encoded wrongly, or a MAC over the wrong bytes, would then pass on
both ends. Here nothing of the switch's code touches the bytes: the frames
are spelt out field by field (ASCII MTI, 8 raw bitmap bytes written as hex,
ASCII fields with their LL/LLL prefixes, 2-byte big-endian length), the
X9.19 MAC is computed with ``cryptography`` alone, and the answers are
parsed with the small table below, taken from the spec's DE table.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from e2e_support import Ledger
from sqlalchemy import select

try:  # cryptography >= 43 keeps (triple) DES here
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

from switch.ledger import schema as s
from tests.client import next_stan
from tests.switch_process import SwitchProcess

# ATM00001's test-only TAK and its check value, as published in README.md ("Demo data").
README_TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
README_TAK_KCV = "7B8358"

# -- the X9.19 MAC, from its definition ---------------------------------------


def _ecb(key: bytes, block: bytes) -> bytes:
    """One block under DES (8-byte key, run as K|K|K) or two-key 3DES (K1|K2|K1)."""
    wide = key * 3 if len(key) == 8 else key
    encryptor = Cipher(TripleDES(wide), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def x919_mac(key: bytes, data: bytes) -> bytes:
    """ANSI X9.19 retail MAC (ISO 9797-1 algorithm 3, padding method 1).

    Zero-pad to whole 8-byte blocks; single-DES CBC with the key's left half
    over every block but the last; the last block under two-key 3DES
    (encrypt with the left half, decrypt with the right, encrypt with the left).
    """
    left = key[:8]
    padded = data + bytes(-len(data) % 8) if data else bytes(8)
    chain = bytes(8)
    blocks = [padded[i : i + 8] for i in range(0, len(padded), 8)]
    for block in blocks[:-1]:
        chain = _ecb(left, bytes(a ^ b for a, b in zip(chain, block, strict=True)))
    last = bytes(a ^ b for a, b in zip(chain, blocks[-1], strict=True))
    return _ecb(key + left, last)


@pytest.mark.parametrize(
    ("key", "data", "mac"),
    [
        # Bouncy Castle ISO9797Alg3MacTest: two whole blocks, no padding.
        ("7CA110454A1A6E570131D9619DC1376E", b"Hello World !!!!", "F09B856213BAB83B"),
        # psec tests/test_mac.py test_generate_retail_mac (padding method 1): a padded block.
        ("41414141414141414242424242424242", b"hello world", "3DDE5C5511661CBF"),
    ],
)
def test_the_tests_x919_mac_gives_published_vectors(key: str, data: bytes, mac: str) -> None:
    assert x919_mac(bytes.fromhex(key), data).hex().upper() == mac


def test_the_readme_tak_is_the_one_the_switch_holds(switch: SwitchProcess) -> None:
    """The switch keeps ATM00001's TAK under its LMK with the check value: it must be
    the README's key (KCV = first 3 bytes of 8 zero bytes under the key)."""
    assert _ecb(README_TAK + README_TAK[:8], bytes(8))[:3].hex().upper() == README_TAK_KCV
    k = s.keys.c
    engine = switch.engine()
    try:
        with engine.connect() as conn:
            kcvs = conn.execute(
                select(k.kcv).where(
                    k.owner == "100001:ATM00001", k.key_type == "TAK", k.state == "active"
                )
            ).all()
    finally:
        engine.dispose()
    assert [row.kcv for row in kcvs] == [README_TAK_KCV]


# -- writing and reading frames by hand -----------------------------------------


def ll(value: str) -> bytes:
    """An LLVAR field: 2 ASCII digits of length, then the value."""
    return b"%02d" % len(value) + value.encode("ascii")


def lll(value: str) -> bytes:
    """An LLLVAR field: 3 ASCII digits of length, then the value."""
    return b"%03d" % len(value) + value.encode("ascii")


def framed(message: bytes) -> bytes:
    """The 2-byte unsigned big-endian length, then the message."""
    return bytes([len(message) >> 8, len(message) & 0xFF]) + message


# The DEs a 0210 or 0810 may carry, from the spec's DE table: fixed ASCII length,
# "LL"/"LLL" for variable ASCII fields, "b8" for 8 raw bytes.
RESPONSE_LAYOUT: dict[int, int | str] = {
    3: 6, 4: 12, 7: 10, 11: 6, 12: 6, 13: 4, 22: 3, 28: 9, 32: "LL", 37: 12, 38: 6,
    39: 2, 41: 8, 42: 15, 48: "LLL", 49: 3, 54: "LLL", 64: "b8", 70: 3, 128: "b8",
}  # fmt: skip


def parse(message: bytes) -> tuple[str, list[int], dict[int, bytes]]:
    """MTI, the bits set, and the raw bytes of each field (without length prefixes)."""
    mti = message[:4].decode("ascii")
    bitmap = int.from_bytes(message[4:12], "big")
    at, width = 12, 64
    if bitmap >> 63:  # bit 1: a secondary bitmap follows
        bitmap = (bitmap << 64) | int.from_bytes(message[12:20], "big")
        at, width = 20, 128
    bits = [n for n in range(2, width + 1) if bitmap >> (width - n) & 1]
    fields: dict[int, bytes] = {}
    for bit in bits:
        layout = RESPONSE_LAYOUT[bit]  # a KeyError is a DE the spec does not expect here
        if layout == "b8":
            size = 8
        elif layout in ("LL", "LLL"):
            digits = len(str(layout))
            size = int(message[at : at + digits])
            at += digits
        else:
            size = int(layout)
        fields[bit] = message[at : at + size]
        assert len(fields[bit]) == size, f"DE {bit} cut short"
        at += size
    assert at == len(message), f"{len(message) - at} bytes after the last field"
    return mti, bits, fields


def tlv(value: str) -> dict[str, str]:
    """DE 48 subelements: 2-letter tag, 3-digit length, value."""
    tags, at = {}, 0
    while at < len(value):
        size = int(value[at + 2 : at + 5])
        tags[value[at : at + 2]] = value[at + 5 : at + 5 + size]
        at += 5 + size
    return tags


def exchange(port: int, frame: bytes) -> bytes:
    """Send one frame on a fresh connection; the message of the one frame that comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(frame)
        head = _read(sock, 2)
        return _read(sock, int.from_bytes(head, "big"))


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the switch closed the connection"
        data += chunk
    return data


def _now() -> str:
    return datetime.now(UTC).strftime("%m%d%H%M%S")


def text(fields: dict[int, bytes], bit: int) -> str:
    return fields[bit].decode("ascii")


# -- the README's inquiry ---------------------------------------------------------------


def test_readme_inquiry_written_byte_by_byte(switch: SwitchProcess) -> None:
    """README "Talking to it": 0200/31 for UTIL01 1000001 from ATM00001 (signed on)."""
    stan, when = next_stan(), _now()
    message = (
        b"0200"
        # bits 3, 7 | 11 | 32 | 41, 48: 0x22 0x20 0x00 0x01 0x00 0x81 0x00 0x00
        + bytes.fromhex("2220000100810000")
        + b"310000"  # DE 3
        + when.encode()  # DE 7
        + stan.encode()  # DE 11
        + ll("100001")  # DE 32
        + b"ATM00001"  # DE 41
        + lll("BL006UTIL01AC0071000001")  # DE 48
    )
    answer = exchange(switch.ports["atm"], framed(message))

    mti, bits, fields = parse(answer)
    assert mti == "0210"
    assert {3, 7, 11, 32, 39, 41, 48, 54} <= set(bits)
    assert 64 not in bits and 4 not in bits and 38 not in bits  # no MAC here, no money
    assert text(fields, 39) == "00"
    assert (text(fields, 3), text(fields, 7), text(fields, 11)) == ("310000", when, stan)
    assert (text(fields, 32), text(fields, 41)) == ("100001", "ATM00001")
    de48 = text(fields, 48)
    assert "NM009GIL*** P." in de48 and "DU012000000012345" in de48
    assert tlv(de48)["NM"] == "GIL*** P." and tlv(de48)["DU"] == "000000012345"
    assert text(fields, 54) == "0040944D000000012345"


# -- a MACed payment on the ATM channel ------------------------------------------------


def _payment(account: str, amount: int, stan: str, when: str, mac: bytes | None) -> bytes:
    """0200/50 with DE 64; ``mac`` None means: compute it over the bytes before DE 64."""
    body = (
        b"0200"
        # bits 3, 4, 7 | 11 | 32 | 41, 48 | 49 | 64: 0x32 0x20 0x00 0x01 0x00 0x81 0x80 0x01
        + bytes.fromhex("3220000100818001")
        + b"500000"  # DE 3
        + b"%012d" % amount  # DE 4
        + when.encode()  # DE 7
        + stan.encode()  # DE 11
        + ll("100001")  # DE 32
        + b"ATM00001"  # DE 41
        + lll(f"BL006UTIL01AC{len(account):03d}{account}")  # DE 48
        + b"944"  # DE 49
    )
    return body + (x919_mac(README_TAK, body) if mac is None else mac)


def test_maced_payment_written_byte_by_byte(switch: SwitchProcess, ledger: Ledger) -> None:
    account = ledger.account(1000)
    stan, when = next_stan(), _now()
    answer = exchange(switch.ports["atm_mac"], framed(_payment(account, 400, stan, when, None)))

    mti, bits, fields = parse(answer)
    assert mti == "0210"
    assert text(fields, 39) == "00", fields
    assert bits[-1] == 64  # the MAC is the last field, over every byte before it
    assert fields[64] == x919_mac(README_TAK, answer[:-8])
    assert (text(fields, 3), text(fields, 4), text(fields, 49)) == ("500000", "000000000400", "944")
    assert (text(fields, 7), text(fields, 11), text(fields, 32), text(fields, 41)) == (
        when,
        stan,
        "100001",
        "ATM00001",
    )
    assert len(text(fields, 38)) == 6
    tags = tlv(text(fields, 48))
    assert tags["DU"] == "000000000600"
    assert tags["RN"][0] == "P" and len(tags["RN"]) == 11
    paid = ledger.payment(int(tags["RN"][1:]))
    assert (paid.account, paid.amount, paid.terminal_id) == (account, 400, "ATM00001")
    assert ledger.due(account) == 600


def test_maced_payment_with_a_byte_changed_after_the_mac_gets_63(
    switch: SwitchProcess, ledger: Ledger
) -> None:
    """The MAC covers the amount: 400 MACed, 900 sent, is refused and moves nothing."""
    account = ledger.account(1000)
    stan, when = next_stan(), _now()
    mac = x919_mac(README_TAK, _payment(account, 400, stan, when, b""))
    tampered = _payment(account, 900, stan, when, mac)
    answer = exchange(switch.ports["atm_mac"], framed(tampered))

    mti, bits, fields = parse(answer)
    assert (mti, text(fields, 39)) == ("0210", "63")
    assert (text(fields, 11), text(fields, 41)) == (stan, "ATM00001")
    assert 64 not in bits and 128 not in bits  # 63 goes unMACed: no MAC oracle
    assert ledger.due(account) == 1000
    assert ledger.payments(account) == []
