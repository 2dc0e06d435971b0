"""The shared behavioural suite: every test runs on the software HSM and on the TCP client.

Inputs are built as a terminal or a partner would build them (clear test
keys encrypted under the test LMK, PIN blocks under a known TPK); expected
values come from published vectors wherever one exists: the demo TPK's KCV,
a ThalesSim key, the IBM CVV vector, Bouncy Castle MACs, NIST CMAC-TDEA,
the psec PVV vector.
"""

from __future__ import annotations

from typing import Any

import pytest

from hsm_sim.crypto import des, kcv, lmk, pin_verify, pinblock
from hsm_sim.interface import (
    CVK,
    PVK,
    TAK,
    TMK,
    TPK,
    ZAK,
    ZMK,
    ZPK,
    DestinationKeyParity,
    HsmError,
    IbmParameters,
    IncompatibleKeyLength,
    InvalidComponentCount,
    InvalidInput,
    InvalidPinBlock,
    InvalidPinBlockFormat,
    KeyUnderLmk,
    MacAlgorithm,
    Padding,
    PinBlock,
    PinBlockFormatDisabled,
    PinLengthOutOfRange,
    SourceKeyParity,
)
from hsm_sim.software import validation_block
from tests.hsm.hsm_support import Blocking, under_lmk

H = bytes.fromhex

DEMO_TPK = "0123456789ABCDEFFEDCBA9876543210"  # KCV 08D7B4
ZPK_CLEAR = "4CF15134A2850DD58A3D10BA80570D38"
OTHER_ZPK_CLEAR = "7CA110454A1A6E570131D9619DC1376E"
ZMK_CLEAR = "8AA83BF8CBDA10620BC1BF19FBB6CD58"
PVK_CLEAR = "0123456789ABCDEFFEDCBA9876543210"  # the psec PVK
PAN = "1122334455667788"  # psec's PVV vector: PVKI 1, PIN 4524 -> PVV 8523
PIN = "4524"
DECTAB = "1234567890123456"
VALIDATION = "11223344556N"

TPK_KEY = under_lmk(TPK, DEMO_TPK)
ZPK_KEY = under_lmk(ZPK, ZPK_CLEAR)
OTHER_ZPK_KEY = under_lmk(ZPK, OTHER_ZPK_CLEAR)
PVK_KEY = under_lmk(PVK, PVK_CLEAR)
ZERO_TPK = under_lmk(TPK, "00" * 16)  # every byte of even parity
ZERO_ZPK = under_lmk(ZPK, "00" * 16)


def pin_block(pin: str = PIN, clear_key: str = DEMO_TPK, pan: str = PAN) -> PinBlock:
    """A format 0 PIN block as a terminal sends it: under its TPK."""
    return PinBlock(des.encrypt_ecb(H(clear_key), pinblock.make_iso0(pin, pan)).hex().upper())


def ibm(pin: str = PIN) -> IbmParameters:
    """IBM 3624 values under which ``pin`` is the card's PIN."""
    account = pinblock.pan_digits_12(PAN)
    block = validation_block(VALIDATION, account)
    offset = pin_verify.ibm3624_offset(H(PVK_CLEAR), pin, block, DECTAB)
    return IbmParameters(offset, VALIDATION, DECTAB, 4)


# ---------------------------------------------------------------- keys


def test_hsm_diagnostics_name_the_loaded_lmk(hsm: Blocking) -> None:
    answer = hsm.diagnostics()
    assert answer.lmk_check_value == lmk.lmk_check_value(lmk.TEST_LMK)
    assert len(answer.firmware) == 9


@pytest.mark.parametrize(("scheme", "length"), [("Z", 16), ("U", 33), ("T", 49)])
@pytest.mark.parametrize("key_type", [ZMK, ZPK, TPK, TAK, ZAK, CVK])
def test_hsm_generated_key_comes_with_its_check_value(
    hsm: Blocking, key_type: str, scheme: str, length: int
) -> None:
    key = hsm.generate_key(key_type, scheme).under_lmk
    assert (key.key_type, len(key.value), len(key.kcv)) == (key_type, length, 6)
    assert key.value[0] == scheme or scheme == "Z"
    assert hsm.key_check_value(key)[:6] == key.kcv


def test_hsm_generated_keys_differ(hsm: Blocking) -> None:
    assert hsm.generate_key(ZPK).under_lmk != hsm.generate_key(ZPK).under_lmk


def test_hsm_check_value_of_the_demo_tpk(hsm: Blocking) -> None:
    assert hsm.key_check_value(TPK_KEY) == "08D7B4FB629D0885"


def test_hsm_check_value_of_a_published_key(hsm: Blocking) -> None:
    # ThalesSim HostCommandTests.GenerateKeyTest: A0 0001U gave this ZPK with KCV 18EC38.
    zpk = KeyUnderLmk(ZPK, "U37C214786596A294ED92DBA27208C13B")
    assert hsm.key_check_value(zpk).startswith("18EC38")


def test_hsm_key_exported_under_a_zmk_imports_back(hsm: Blocking) -> None:
    zmk = hsm.generate_key(ZMK).under_lmk
    made = hsm.generate_key(ZPK, "U", zmk, "X")
    assert made.under_kek is not None and made.under_kek.startswith("X")
    imported = hsm.import_key(ZPK, zmk, made.under_kek)
    assert imported == made.under_lmk  # same clear key, same LMK: same value and KCV


@pytest.mark.parametrize("scheme", [None, "U"])
def test_hsm_import_of_a_known_key_under_a_known_zmk(hsm: Blocking, scheme: str | None) -> None:
    under_zmk = "X" + des.encrypt_ecb(H(ZMK_CLEAR), H(ZPK_CLEAR)).hex().upper()
    imported = hsm.import_key(ZPK, under_lmk(ZMK, ZMK_CLEAR), under_zmk, scheme)
    assert imported.value == ZPK_KEY.value
    assert imported.kcv == kcv.kcv_des(H(ZPK_CLEAR))[:3].hex().upper()


COMPONENTS = ("0123456789ABCDEF0123456789ABCDEF", "1032547698BADCFE1032547698BADCFE")


@pytest.mark.parametrize("count", [2, 3])
def test_hsm_forms_a_key_from_components_under_the_lmk(hsm: Blocking, count: int) -> None:
    """A4: the key is the components' XOR with odd parity, under the LMK, with its KCV."""
    clears = [H(c) for c in (*COMPONENTS, DEMO_TPK)[:count]]
    parts = tuple(under_lmk(TMK, c.hex()) for c in clears)
    key = hsm.form_key(TMK, parts, "U")
    xor = bytes(16)
    for c in clears:
        xor = bytes(a ^ b for a, b in zip(xor, c, strict=True))
    clear = des.fix_parity(xor)
    assert key.kcv == kcv.kcv_des(clear)[:3].hex().upper()
    assert lmk.decrypt_key(lmk.TEST_LMK, TMK, key.value) == clear
    assert hsm.key_check_value(key)[:6] == key.kcv


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ((under_lmk(TMK, COMPONENTS[0]),), InvalidComponentCount),  # one custodian: refused
        ((under_lmk(TMK, COMPONENTS[0]), ZERO_TPK), SourceKeyParity),  # a component of 00s
        ((under_lmk(TMK, COMPONENTS[0]), under_lmk(TAK, COMPONENTS[1])), InvalidInput),
    ],
    ids=["one component", "even parity", "component of another type"],
)
def test_hsm_form_key_refuses(
    hsm: Blocking, parts: tuple[KeyUnderLmk, ...], error: type[HsmError]
) -> None:
    with pytest.raises(error):
        hsm.form_key(TMK, parts, "U")


def test_hsm_import_of_a_single_length_key(hsm: Blocking) -> None:
    under_zmk = des.encrypt_ecb(H(ZMK_CLEAR), H(ZPK_CLEAR[:16])).hex().upper()
    imported = hsm.import_key(ZPK, under_lmk(ZMK, ZMK_CLEAR), under_zmk)
    assert imported.value == under_lmk(ZPK, ZPK_CLEAR[:16], "Z").value


def test_hsm_key_exported_under_a_tmk_is_the_same_key(hsm: Blocking) -> None:
    made = hsm.generate_key(TPK, "U", under_lmk(TMK, ZMK_CLEAR), "X")
    clear = des.decrypt_ecb(H(ZMK_CLEAR), H(made.under_kek[1:]))
    assert kcv.kcv_des(clear)[:3].hex().upper() == made.under_lmk.kcv


# ---------------------------------------------------------------- PINs


def test_hsm_translate_pin_from_tpk_to_zpk(hsm: Blocking) -> None:
    answer = hsm.translate_pin(TPK_KEY, ZPK_KEY, pin_block(), PAN)
    assert answer.pin_length == 4
    assert answer.pin_block.format_code == "01"
    clear = des.decrypt_ecb(H(ZPK_CLEAR), H(answer.pin_block.value))
    assert pinblock.read_iso0(clear, PAN) == PIN


def test_hsm_translate_pin_from_zpk_to_zpk_changing_format(hsm: Blocking) -> None:
    incoming = pin_block(clear_key=ZPK_CLEAR)
    answer = hsm.translate_pin(ZPK_KEY, OTHER_ZPK_KEY, incoming, PAN, "47")
    clear = des.decrypt_ecb(H(OTHER_ZPK_CLEAR), H(answer.pin_block.value))
    assert (answer.pin_block.format_code, pinblock.read_iso3(clear, PAN)) == ("47", PIN)


def test_hsm_translated_pin_verifies_with_the_published_pvv(hsm: Blocking) -> None:
    zpk = hsm.generate_key(ZPK).under_lmk
    translated = hsm.translate_pin(TPK_KEY, zpk, pin_block(), PAN).pin_block
    assert hsm.verify_pin_pvv(zpk, PVK_KEY, translated, PAN, 1, "8523") is True
    assert hsm.verify_pin_pvv(zpk, PVK_KEY, translated, PAN, 1, "8524") is False


@pytest.mark.parametrize("pin_key", ["tpk", "zpk"])
def test_hsm_verify_pin_pvv(hsm: Blocking, pin_key: str) -> None:
    key, clear = (TPK_KEY, DEMO_TPK) if pin_key == "tpk" else (ZPK_KEY, ZPK_CLEAR)
    assert hsm.verify_pin_pvv(key, PVK_KEY, pin_block(clear_key=clear), PAN, 1, "8523") is True
    wrong = pin_block("4525", clear_key=clear)
    assert hsm.verify_pin_pvv(key, PVK_KEY, wrong, PAN, 1, "8523") is False


def test_hsm_verify_pin_pvv_with_a_pvk_pair_of_single_keys(hsm: Blocking) -> None:
    pair = under_lmk(PVK, PVK_CLEAR[:16], "Z").value + under_lmk(PVK, PVK_CLEAR[16:], "Z").value
    pvk = KeyUnderLmk(PVK, pair)
    assert hsm.verify_pin_pvv(TPK_KEY, pvk, pin_block(), PAN, 1, "8523") is True


@pytest.mark.parametrize("pin_key", ["tpk", "zpk"])
def test_hsm_verify_pin_ibm_offset(hsm: Blocking, pin_key: str) -> None:
    key, clear = (TPK_KEY, DEMO_TPK) if pin_key == "tpk" else (ZPK_KEY, ZPK_CLEAR)
    assert hsm.verify_pin_ibm(key, PVK_KEY, pin_block(clear_key=clear), PAN, ibm()) is True
    wrong = pin_block("4525", clear_key=clear)
    assert hsm.verify_pin_ibm(key, PVK_KEY, wrong, PAN, ibm()) is False


def test_hsm_translated_pin_verifies_with_its_ibm_offset(hsm: Blocking) -> None:
    translated = hsm.translate_pin(TPK_KEY, ZPK_KEY, pin_block("93817"), PAN).pin_block
    assert hsm.verify_pin_ibm(ZPK_KEY, PVK_KEY, translated, PAN, ibm("93817")) is True
    assert hsm.verify_pin_ibm(ZPK_KEY, PVK_KEY, translated, PAN, ibm("93818")) is False


def test_hsm_account_number_is_as_good_as_the_pan(hsm: Blocking) -> None:
    account = pinblock.pan_digits_12(PAN)
    assert hsm.verify_pin_pvv(TPK_KEY, PVK_KEY, pin_block(), account, 1, "8523") is True


# ---------------------------------------------------------------- MACs and CVVs

# (algorithm, key type, clear key, scheme, data, padding, MAC): published vectors.
MAC_VECTORS = [
    # Bouncy Castle MacTest "64bit DESede Mac" (ISO 9797-1 alg 1, padding 1).
    (
        MacAlgorithm.ISO9797_ALG1,
        TAK,
        "7CA110454A1A6E570131D9619DC1376E",
        "U",
        b"Hello World !!!!",
        Padding.METHOD1,
        "862304D33AF01096",
    ),
    # Bouncy Castle ISO9797Alg3MacTest (X9.19 retail MAC).
    (
        MacAlgorithm.ISO9797_ALG3,
        ZAK,
        "7CA110454A1A6E570131D9619DC1376E",
        "U",
        b"Hello World !!!!",
        Padding.METHOD1,
        "F09B856213BAB83B",
    ),
    # ICAO 9303 part 11 D.3: retail MAC, padding method 2.
    (
        MacAlgorithm.ISO9797_ALG3,
        TAK,
        "7962D9ECE03D1ACD4C76089DCE131543",
        "U",
        H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2"),
        Padding.METHOD2,
        "5F1448EEA8AD90A7",
    ),
    # NIST SP 800-38B, CMAC with three-key TDEA, Mlen = 64.
    (
        MacAlgorithm.CMAC,
        TAK,
        "8AA83BF8CBDA10620BC1BF19FBB6CD58BC313D4A371CA8B5",
        "T",
        H("6BC1BEE22E409F96"),
        Padding.NONE,
        "8E8F293136283797",
    ),
    # NIST SP 800-38B, CMAC with two-key TDEA, Mlen = 0.
    (
        MacAlgorithm.CMAC,
        ZAK,
        "4CF15134A2850DD58A3D10BA80570D38",
        "U",
        b"",
        Padding.NONE,
        "BD2EBF9A3BA00361",
    ),
]


@pytest.mark.parametrize(
    ("algorithm", "key_type", "clear", "scheme", "data", "padding", "expected"), MAC_VECTORS
)
def test_hsm_mac_of_published_vectors(
    hsm: Blocking,
    algorithm: MacAlgorithm,
    key_type: str,
    clear: str,
    scheme: str,
    data: bytes,
    padding: Padding,
    expected: str,
) -> None:
    key = under_lmk(key_type, clear, scheme)
    assert hsm.generate_mac(key, data, algorithm, padding, 16) == expected
    assert hsm.generate_mac(key, data, algorithm, padding) == expected[:8]
    assert hsm.verify_mac(key, data, expected, algorithm, padding) is True
    assert hsm.verify_mac(key, data, expected[:8].lower(), algorithm, padding) is True


@pytest.mark.parametrize("algorithm", list(MacAlgorithm))
def test_hsm_mac_of_other_data_or_another_key_does_not_verify(
    hsm: Blocking, algorithm: MacAlgorithm
) -> None:
    key, other = hsm.generate_key(TAK).under_lmk, hsm.generate_key(TAK).under_lmk
    data = bytes(range(256)) * 3  # every byte value: binary messages pass unchanged
    mac = hsm.generate_mac(key, data, algorithm, Padding.METHOD2)
    assert hsm.verify_mac(key, data, mac, algorithm, Padding.METHOD2) is True
    assert hsm.verify_mac(key, data + b"!", mac, algorithm, Padding.METHOD2) is False
    assert hsm.verify_mac(other, data, mac, algorithm, Padding.METHOD2) is False
    flipped = f"{int(mac, 16) ^ 1:08X}"
    assert hsm.verify_mac(key, data, flipped, algorithm, Padding.METHOD2) is False


CVK_KEY = under_lmk(CVK, "0123456789ABCDEFFEDCBA9876543210")


def test_hsm_cvv_of_the_published_vector(hsm: Blocking) -> None:
    # IBM's CVV example: CVK A 0123456789ABCDEF, B FEDCBA9876543210 -> 561.
    assert hsm.generate_cvv(CVK_KEY, "4123456789012345", "8701", "101") == "561"
    assert hsm.verify_cvv(CVK_KEY, "4123456789012345", "8701", "101", "561") is True
    assert hsm.verify_cvv(CVK_KEY, "4123456789012345", "8701", "101", "562") is False
    assert hsm.verify_cvv(CVK_KEY, "4123456789012345", "8702", "101", "561") is False


def test_hsm_cvv_of_a_generated_cvk(hsm: Blocking) -> None:
    cvk = hsm.generate_key(CVK).under_lmk
    cvv = hsm.generate_cvv(cvk, "5432109876543210", "2612", "201")
    assert len(cvv) == 3 and cvv.isdigit()
    assert hsm.verify_cvv(cvk, "5432109876543210", "2612", "201", cvv) is True


# ---------------------------------------------------------------- errors

ISO1_UNDER_TPK = PinBlock(
    des.encrypt_ecb(H(DEMO_TPK), pinblock.make_iso1(PIN, bytes(7))).hex().upper()
)
TAK_KEY = under_lmk(TAK, OTHER_ZPK_CLEAR)

BLOCK = pin_block()
ZMK_KEY = under_lmk(ZMK, ZMK_CLEAR)
X_ZPK = "X" + des.encrypt_ecb(H(ZMK_CLEAR), H(ZPK_CLEAR)).hex().upper()
MAC_ALG1, METHOD1 = MacAlgorithm.ISO9797_ALG1, Padding.METHOD1
CARD = ("4123456789012345", "8701", "101")

# (what is wrong, the error, the operation, its arguments)
BAD_CALLS: list[tuple[str, type[HsmError], str, tuple[Any, ...]]] = [
    ("TAK as PIN key", InvalidInput, "translate_pin", (TAK_KEY, ZPK_KEY, BLOCK, PAN)),
    ("TPK as destination", InvalidInput, "translate_pin", (TPK_KEY, TPK_KEY, BLOCK, PAN)),
    (
        "PIN block not hex",
        InvalidInput,
        "translate_pin",
        (TPK_KEY, ZPK_KEY, PinBlock("X" * 16), PAN),
    ),
    ("short PAN", InvalidInput, "translate_pin", (TPK_KEY, ZPK_KEY, BLOCK, "12345")),
    (
        "unknown format",
        InvalidPinBlockFormat,
        "translate_pin",
        (TPK_KEY, ZPK_KEY, PinBlock(BLOCK.value, "99"), PAN),
    ),
    ("format 48", PinBlockFormatDisabled, "translate_pin", (TPK_KEY, ZPK_KEY, BLOCK, PAN, "48")),
    (
        "block of another format",
        InvalidPinBlock,
        "translate_pin",
        (TPK_KEY, ZPK_KEY, ISO1_UNDER_TPK, PAN),
    ),
    (
        "PIN too long",
        PinLengthOutOfRange,
        "translate_pin",
        (TPK_KEY, ZPK_KEY, pin_block("452499"), PAN, "01", 5),
    ),
    ("source key parity", SourceKeyParity, "translate_pin", (ZERO_TPK, ZPK_KEY, BLOCK, PAN)),
    (
        "destination key parity",
        DestinationKeyParity,
        "translate_pin",
        (TPK_KEY, ZERO_ZPK, BLOCK, PAN),
    ),
    (
        "PVK parity",
        DestinationKeyParity,
        "verify_pin_pvv",
        (TPK_KEY, ZERO_TPK, BLOCK, PAN, 1, "8523"),
    ),
    ("MAC of 12 hex", InvalidInput, "generate_mac", (TAK_KEY, b"data", MAC_ALG1, METHOD1, 12)),
    ("MAC under a ZPK", InvalidInput, "generate_mac", (ZPK_KEY, b"data", MAC_ALG1, METHOD1)),
    (
        "no padding, part block",
        InvalidInput,
        "generate_mac",
        (TAK_KEY, b"data", MAC_ALG1, Padding.NONE),
    ),
    ("CVV under a TPK", InvalidInput, "generate_cvv", (TPK_KEY, *CARD)),
    ("expiry not digits", InvalidInput, "generate_cvv", (CVK_KEY, CARD[0], "87A1", CARD[2])),
    ("unknown key type", InvalidInput, "generate_key", ("0ZZ",)),
    ("unknown key scheme", InvalidInput, "generate_key", (ZPK, "Q")),
    ("export under a ZPK", InvalidInput, "generate_key", (ZPK, "U", ZPK_KEY)),
    ("import as T", IncompatibleKeyLength, "import_key", (ZPK, ZMK_KEY, X_ZPK, "T")),
    ("import a TAK", InvalidInput, "import_key", (TAK, under_lmk(ZMK, ZMK_CLEAR), "X" + "0" * 32)),
    ("key value too short", InvalidInput, "key_check_value", (KeyUnderLmk(ZPK, "U0123"),)),
]


@pytest.mark.parametrize(
    ("error", "operation", "args"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_hsm_bad_input_is_a_typed_error(
    hsm: Blocking, error: type[HsmError], operation: str, args: tuple[Any, ...]
) -> None:
    with pytest.raises(error) as raised:
        getattr(hsm, operation)(*args)
    assert raised.value.code == error.CODE  # type: ignore[attr-defined]
