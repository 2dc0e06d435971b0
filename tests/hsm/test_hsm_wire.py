"""The simulator on the wire, built from hsm-protocol.md alone: bytes in, bytes out.

Keys under the LMK are made here with ``cryptography`` directly, following
the spec's variant scheme (not with ``hsm_sim.crypto``), and PIN blocks are
built by hand, so these tests pin the protocol, not our own functions.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from hsm_sim.commands import HANDLERS
from hsm_sim.layouts import COMMANDS
from hsm_sim.server import HsmServerFactory, listen
from hsm_sim.software import HsmCore
from tests.hsm.conftest import Simulator
from tests.hsm.hsm_support import ReactorThread, connect, exchange, frame, read_frame

# LMK pairs of the test set (spec "Keys"), by the LMK code of the key types used here.
PAIR_14_15 = "E0E0010101010101F1F1010101010101"  # 02: TPK, PVK, CVK (variant 4)
PAIR_06_07 = "61616161616161617070707070707070"  # 01: ZPK
PAIR_16_17 = "1C587F1C13924FEF0101010101010101"  # 03: TAK
PAIR_04_05 = "40404040404040405151515151515151"  # 00: ZMK
DEMO_TPK = "0123456789ABCDEFFEDCBA9876543210"
ZPK = "4CF15134A2850DD58A3D10BA80570D38"
ZMK = "8AA83BF8CBDA10620BC1BF19FBB6CD58"
ACCOUNT = "233445566778"  # of PAN 1122334455667788: 12 rightmost digits without the check digit
VARIANT_4 = 0xDE  # key type 4xx (CVK)


def ede(key: bytes, block: bytes, decrypt: bool = False) -> bytes:
    cipher = Cipher(TripleDES(key + key[:8]), modes.ECB())
    engine = cipher.decryptor() if decrypt else cipher.encryptor()
    return engine.update(block) + engine.finalize()


def scheme_u(pair_hex: str, clear_hex: str, variant: int = 0) -> str:
    """A double-length key under an LMK pair, scheme U: the key-type variant XORed into
    the pair's first byte, A6 / 5A into the right-hand key's first byte for each half."""
    pair = bytearray(bytes.fromhex(pair_hex))
    pair[0] ^= variant
    clear = bytes.fromhex(clear_hex)
    halves = []
    for i, scheme_variant in enumerate((0xA6, 0x5A)):
        key = bytes(pair[:8]) + bytes([pair[8] ^ scheme_variant]) + bytes(pair[9:])
        halves.append(ede(key, clear[8 * i : 8 * i + 8]))
    return "U" + b"".join(halves).hex().upper()


def iso0(pin: str, account: str, key_hex: str) -> str:
    """ISO 9564 format 0 under a key: 0, length, PIN, F fill XOR 0000 + account."""
    field = int(f"0{len(pin)}{pin}".ljust(16, "F"), 16) ^ int("0000" + account, 16)
    return ede(bytes.fromhex(key_hex), field.to_bytes(8, "big")).hex().upper()


TPK_U = scheme_u(PAIR_14_15, DEMO_TPK)
ZPK_U = scheme_u(PAIR_06_07, ZPK)
PVK_U = scheme_u(PAIR_14_15, DEMO_TPK)  # psec's PVK is the demo TPK's value
CVK_U = scheme_u(PAIR_14_15, DEMO_TPK, VARIANT_4)
TAK_U = scheme_u(PAIR_16_17, "7CA110454A1A6E570131D9619DC1376E")


def check_value(clear: bytes) -> str:
    return ede(clear, bytes(8)).hex().upper()


def ask(simulator: Simulator, command: str, header: str = "0001") -> str:
    return exchange(simulator.port, (header + command).encode("latin-1")).decode("latin-1")


# ---------------------------------------------------------------- answers


def test_hsm_every_command_of_the_spec_has_a_layout_and_a_handler() -> None:
    spec = {"NC", "A0", "A4", "BU", "FA", "HC", "CA", "CC", "DA", "EA", "DC", "EC", "CW", "CY"}
    assert set(COMMANDS) == set(HANDLERS) == spec | {"M6", "M8"}


def test_hsm_nc_answers_lmk_check_value_and_firmware(simulator: Simulator) -> None:
    answer = ask(simulator, "NC")
    assert answer[:8] == "0001ND00" and len(answer) == 8 + 16 + 9
    int(answer[8:24], 16)  # 16 hex


def test_hsm_bu_gives_the_demo_tpk_check_value(simulator: Simulator) -> None:
    assert ask(simulator, "BU021" + TPK_U, "AB12") == "AB12BV0008D7B4FB629D0885"


def test_hsm_bu_with_a_three_digit_key_type(simulator: Simulator) -> None:
    assert ask(simulator, f"BUFF1{TPK_U};002") == "0001BV0008D7B4FB629D0885"


def test_hsm_a0_key_has_the_check_value_bu_gives(simulator: Simulator) -> None:
    answer = ask(simulator, "A00001U")
    assert answer[:8] == "0001A100" and len(answer) == 8 + 33 + 6
    key, kcv = answer[8:41], answer[41:]
    assert ask(simulator, "BU011" + key)[8:14] == kcv


def test_hsm_fa_imports_a_zpk_under_a_zmk(simulator: Simulator) -> None:
    under_zmk = "X" + ede(bytes.fromhex(ZMK), bytes.fromhex(ZPK)).hex().upper()
    answer = ask(simulator, f"FA{scheme_u(PAIR_04_05, ZMK)}{under_zmk}")
    assert answer == "0001FB00" + ZPK_U + check_value(bytes.fromhex(ZPK))
    answer = ask(simulator, f"FA{scheme_u(PAIR_04_05, ZMK)}{under_zmk};XU1")
    assert answer == "0001FB00" + ZPK_U + check_value(bytes.fromhex(ZPK))[:6]


@pytest.mark.parametrize(("options", "kcv_length"), [("", 16), (";XU1", 6), (";XU0", 16)])
def test_hsm_hc_makes_a_terminal_key_under_the_current_one(
    simulator: Simulator, options: str, kcv_length: int
) -> None:
    answer = ask(simulator, f"HC{TPK_U}{options}")
    assert answer[:8] == "0001HD00" and answer[8] == "X" and answer[41] == "U"
    under_current, under_lmk, kcv = answer[9:41], answer[41:74], answer[74:]
    clear = ede(bytes.fromhex(DEMO_TPK), bytes.fromhex(under_current), decrypt=True)
    assert kcv == check_value(clear)[:kcv_length]
    assert ask(simulator, f"BU021{under_lmk}")[8:] == check_value(clear)


def test_hsm_ca_translates_a_pin_block_to_the_zpk(simulator: Simulator) -> None:
    block = iso0("4524", ACCOUNT, DEMO_TPK)
    answer = ask(simulator, f"CA{TPK_U}{ZPK_U}12{block}0101{ACCOUNT}")
    assert answer[:8] == "0001CB00" and answer[8:10] == "04" and answer[26:] == "01"
    assert answer[10:26] == iso0("4524", ACCOUNT, ZPK)  # format 0 is deterministic


def test_hsm_dc_answers_00_or_01(simulator: Simulator) -> None:
    block = iso0("4524", ACCOUNT, DEMO_TPK)
    request = f"DC{TPK_U}{PVK_U}{block}01{ACCOUNT}1"
    assert ask(simulator, request + "8523") == "0001DD00"  # psec's PVV vector
    assert ask(simulator, request + "8524") == "0001DD01"


def test_hsm_cw_gives_the_published_cvv(simulator: Simulator) -> None:
    assert ask(simulator, f"CW{CVK_U}4123456789012345;8701101") == "0001CX00561"
    assert ask(simulator, f"CY{CVK_U}5614123456789012345;8701101") == "0001CZ00"
    assert ask(simulator, f"CY{CVK_U}5624123456789012345;8701101") == "0001CZ01"


def test_hsm_m6_macs_a_binary_message(simulator: Simulator) -> None:
    # Bouncy Castle ISO9797Alg3MacTest: "Hello World !!!!" -> F09B856213BAB83B.
    request = f"M600131003{TAK_U}0010Hello World !!!!"
    assert ask(simulator, request) == "0001M700F09B856213BAB83B"
    assert ask(simulator, f"M800131003{TAK_U}0010Hello World !!!!F09B856213BAB83B")[4:] == "M900"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (b"\xff\xfe\x00", "ZZ15"),  # garbage
        (b"", "ZZ15"),  # a header and nothing else
        (b"N", "ZZ15"),
        (b"XY", "ZZ68"),  # unknown command
        (b"BU021U0123", "BV15"),  # truncated
        (b"NCextra", "ND15"),  # data after the last field
        (b"BU02" + b"\x00" * 33, "BV15"),  # wrong characters
        (b"BU021" + b"U" + b"00" * 16, "BV10"),  # a key of even parity
        (b"BU001" + TPK_U.encode(), "BV10"),  # a TPK presented as a ZMK
        (b"BU991" + TPK_U.encode(), "BV15"),  # unknown key type code
        (b"BU020" + TPK_U.encode(), "BV27"),  # length flag says single
        (b"A00ZZZU", "A115"),
        (b"CA" + TPK_U.encode() + ZPK_U.encode() + b"12" + b"0" * 16 + b"9901" + b"1" * 12, "CB23"),
    ],
)
def test_hsm_bad_commands_get_error_answers(
    simulator: Simulator, command: bytes, answer: str
) -> None:
    assert exchange(simulator.port, b"0009" + command) == b"0009" + answer.encode()


def test_hsm_frame_shorter_than_the_header_is_ignored(simulator: Simulator) -> None:
    with connect(simulator.port) as sock:
        sock.sendall(frame(b"00") + frame(b"0002NC"))
        assert read_frame(sock)[:8] == b"0002ND00"


def test_hsm_many_requests_in_flight_on_one_connection(simulator: Simulator) -> None:
    headers = [f"{n:04d}".encode() for n in range(20)]
    with connect(simulator.port) as sock:
        sock.sendall(b"".join(frame(h + b"BU021" + TPK_U.encode()) for h in headers))
        answers = [read_frame(sock) for _ in headers]
    assert answers == [h + b"BV0008D7B4FB629D0885" for h in headers]


def test_hsm_over_long_frame_closes_only_its_connection(simulator: Simulator) -> None:
    with connect(simulator.port) as bystander, connect(simulator.port) as sock:
        sock.sendall(struct.pack(">H", 0xFFFF) + b"0001NC")
        assert sock.recv(100) == b""  # closed by the server
        bystander.sendall(frame(b"0003NC"))
        assert read_frame(bystander)[:8] == b"0003ND00"


def test_hsm_connection_closed_mid_frame_harms_nobody(simulator: Simulator) -> None:
    with connect(simulator.port) as sock:
        sock.sendall(struct.pack(">H", 40) + b"0001BU02")
        sock.shutdown(socket.SHUT_RDWR)
    assert ask(simulator, "NC")[:8] == "0001ND00"


@pytest.fixture
def six_char_headers(reactor_thread: ReactorThread) -> Iterator[int]:
    factory = HsmServerFactory(HsmCore(), header_length=6)
    listening = reactor_thread.call(listen, reactor_thread.reactor, factory, "127.0.0.1", 0)
    yield listening.getHost().port
    reactor_thread.call(listening.stopListening)


def test_hsm_header_length_is_configurable(six_char_headers: int) -> None:
    assert exchange(six_char_headers, b"HEAD01NC")[:10] == b"HEAD01ND00"
