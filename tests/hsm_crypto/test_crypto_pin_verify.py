"""Visa PVV and IBM 3624 against published vectors."""

import pytest

from hsm_sim.crypto.errors import CryptoError
from hsm_sim.crypto.pin_verify import (
    ibm3624_natural_pin,
    ibm3624_offset,
    ibm3624_verify,
    visa_pvv,
)

H = bytes.fromhex
# psec tests/test_pin.py (github knovichikhin/psec) use this PVK throughout.
PVK = H("0123456789ABCDEFFEDCBA9876543210")
DECTAB = "1234567890123456"


@pytest.mark.parametrize(
    ("pvki", "pin", "pan", "pvv"),
    [
        # psec tests/test_pin.py test_generate_visa_pvv.
        ("1", "4524", "1122334455667788", "8523"),
        ("2", "1912", "1122334455667788", "3244"),
        ("1", "0570", "1122334455667718", "3144"),
        ("1", "8299", "1122334455667708", "4422"),
    ],
)
def test_visa_pvv(pvki: str, pin: str, pan: str, pvv: str) -> None:
    assert visa_pvv(PVK, pan, pvki, pin) == pvv


def test_visa_pvv_uses_four_leftmost_pin_digits() -> None:
    # IBM ICSF "VISA PVV generation algorithm" / payShield PV: the TSP holds
    # the 4 leftmost PIN digits, so a longer PIN gives the psec vector's PVV.
    assert visa_pvv(PVK, "1122334455667788", "1", "452499") == "8523"


@pytest.mark.parametrize(
    ("pvk", "pan", "pvki", "pin"),
    [
        # psec test_generate_visa_pvv_exceptions, adapted to a 16-byte PVK pair.
        (H("0123456789ABCDEF"), "1122334455667788", "1", "0000"),
        (PVK, "1122334455667788", "A", "0000"),
        (PVK, "1122334455667788", "11", "0000"),
        (PVK, "1122334455667788", "1", "000"),
        (PVK, "1122334455667788", "1", "A000"),
        (PVK, "11223344556", "1", "0000"),
        (PVK, "1122334455A", "1", "0000"),
    ],
)
def test_visa_pvv_rejects_bad_input(pvk: bytes, pan: str, pvki: str, pin: str) -> None:
    with pytest.raises(CryptoError):
        visa_pvv(pvk, pan, pvki, pin)


# psec tests/test_pin.py test_generate_ibm3624_pin / _offset: validation data is
# the PAN slice [offset:offset+length] right-padded to 16 with the pad digit.
VALIDATION = {
    "full": "1122334455667788",  # offset 0, length 16, pad F
    "14F": "11223344556677FF",  # offset 0, length 14, pad F
    "1_14": "1223344556677811",  # offset 1, length 14, pad 1
    "2_14": "2233445566778811",  # offset 2, length 14, pad 1
}


@pytest.mark.parametrize(
    ("data", "natural"),
    [("full", "4524"), ("14F", "5518"), ("1_14", "3675"), ("2_14", "5550")],
)
def test_ibm3624_natural_pin(data: str, natural: str) -> None:
    # psec test_generate_ibm3624_pin with offset 0000.
    assert ibm3624_natural_pin(PVK, VALIDATION[data], DECTAB, 4) == natural


@pytest.mark.parametrize(
    ("pin", "offset"),
    [
        # psec test_generate_ibm3624_offset (validation data = full PAN).
        ("4524", "0000"),
        ("5635", "1111"),
        ("0000", "6586"),
        ("1111", "7697"),
        ("1234", "7710"),
    ],
)
def test_ibm3624_offset_and_verify(pin: str, offset: str) -> None:
    assert ibm3624_offset(PVK, pin, VALIDATION["full"], DECTAB) == offset
    assert ibm3624_verify(PVK, pin, offset, VALIDATION["full"], DECTAB, 4)


def test_ibm3624_verify_rejects_wrong_pin() -> None:
    # psec vector: offset 7710 belongs to PIN 1234, not 1235 or a 5-digit PIN.
    assert not ibm3624_verify(PVK, "1235", "7710", VALIDATION["full"], DECTAB, 4)
    assert not ibm3624_verify(PVK, "12345", "7710", VALIDATION["full"], DECTAB, 4)


def test_ibm3624_verify_check_length_compares_rightmost_digits() -> None:
    # IBM ICSF "3624 PIN Verification algorithm": the rightmost m (check length)
    # digits are compared. psec: natural 4524, offset 1111 -> PIN 5635, so with a
    # 6-digit offset only the last 4 digits of natural+offset must match.
    # (A property of the rule, not a vector: the two trailing natural digits
    # come from the code, the offset adds 00 to them.)
    natural6 = ibm3624_natural_pin(PVK, VALIDATION["full"], DECTAB, 6)
    assert natural6.startswith("4524")
    entered = "9635" + natural6[4:]  # first digit wrong, last four right
    assert ibm3624_verify(PVK, entered, "111100", VALIDATION["full"], DECTAB, 4)
    assert not ibm3624_verify(PVK, entered, "111100", VALIDATION["full"], DECTAB, 6)


@pytest.mark.parametrize(
    ("validation", "dectab"),
    [
        ("112233445566778", DECTAB),  # 15 hex digits
        ("11223344556677GG", DECTAB),  # not hex
        ("1122334455667788", "123456789012345"),  # psec: table must be 16 digits
        ("1122334455667788", "123456789012345A"),
    ],
)
def test_ibm3624_rejects_bad_input(validation: str, dectab: str) -> None:
    with pytest.raises(CryptoError):
        ibm3624_natural_pin(PVK, validation, dectab, 4)


def test_ibm3624_rejects_bad_lengths() -> None:
    with pytest.raises(CryptoError):
        ibm3624_natural_pin(PVK, VALIDATION["full"], DECTAB, 3)
    with pytest.raises(CryptoError):
        ibm3624_verify(PVK, "1234", "7710", VALIDATION["full"], DECTAB, 5)
    with pytest.raises(CryptoError):
        ibm3624_natural_pin(b"1234", VALIDATION["full"], DECTAB, 4)  # psec: not a DES key
