"""Visa CVV against published vectors."""

import pytest

from hsm_sim.crypto.cvv import visa_cvv
from hsm_sim.crypto.errors import CryptoError

H = bytes.fromhex
CVK = H("0123456789ABCDEF FEDCBA9876543210")


@pytest.mark.parametrize(
    ("cvk", "pan", "expiry", "service_code", "cvv"),
    [
        # Widely published Visa CVV example (CVK A 0123456789ABCDEF, B
        # FEDCBA9876543210); also the Atalla simulator test GenerateCVVTest in
        # e6tech "elements" (net.e6tech.elements.security.hsm.atalla.simulator),
        # data 41234567890123458701101 -> "561...".
        (CVK, "4123456789012345", "8701", "101", "561"),
        # Worked example "Algorithm generation (7) CVN" (topic.alibabacloud.com):
        # same keys and PAN, service code 111, ENCE 8D5625FA78011A0C -> CVN 856.
        (CVK, "4123456789012345", "8701", "111", "856"),
        # psec tests/test_cvv.py test_generate_cvv.
        (H("99999999999999998888888888888888"), "2222222222222222", "3333", "111", "361"),
        # psec psec/cvv.py generate_cvv docstring example.
        (CVK, "1234567890123456", "9912", "220", "170"),
    ],
)
def test_visa_cvv(cvk: bytes, pan: str, expiry: str, service_code: str, cvv: str) -> None:
    assert visa_cvv(cvk, pan, expiry, service_code) == cvv


@pytest.mark.parametrize(
    ("cvk", "pan", "expiry", "service_code"),
    [
        # psec tests/test_cvv.py test_generate_cvv_exceptions.
        (b"AAAAAAAA", "5555555551234567", "2012", "220"),
        (b"AAAAAAAABBBBBBBBCCCCCCCC", "5555555551234567", "2012", "220"),
        (CVK, "55555555512345671234", "2012", "220"),
        (CVK, "555555555123456A", "2012", "220"),
        (CVK, "5555555551234567", "201", "220"),
        (CVK, "5555555551234567", "201A", "220"),
        (CVK, "5555555551234567", "2012", "2202"),
        (CVK, "5555555551234567", "2012", "22A"),
    ],
)
def test_visa_cvv_rejects_bad_input(cvk: bytes, pan: str, expiry: str, service_code: str) -> None:
    with pytest.raises(CryptoError):
        visa_cvv(cvk, pan, expiry, service_code)
