"""Issuer PIN verification: Visa PVV and IBM 3624 natural PIN / offset.

Neither method stores the PIN: both derive a value from the PIN (or from
the account) under a PIN verification key, so only the HSM can check it.
"""

from collections.abc import Callable
from functools import partial

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.digits import require_decimal, visa_decimalise
from hsm_sim.crypto.errors import CryptoError

_HEX = frozenset("0123456789ABCDEF")


def visa_pvv(pvk: bytes, pan: str, pvki: str, pin: str) -> str:
    """Visa PIN verification value (4 digits).

    TSP = 11 rightmost PAN digits excluding the check digit, the PVK index and
    the 4 leftmost PIN digits; encrypted under the double-length PVK and
    decimalised (IBM ICSF "VISA PVV generation algorithm", payShield DG/PV).
    """
    if len(pvk) != 16:
        raise CryptoError(f"PVK must be a 16-byte key pair, not {len(pvk)} bytes")
    return visa_pvv_with(partial(encrypt_ecb, pvk), pan, pvki, pin)


def visa_pvv_with(encrypt: Callable[[bytes], bytes], pan: str, pvki: str, pin: str) -> str:
    """:func:`visa_pvv` with the PVK given as its ECB encryption (an HSM keeps that ready)."""
    require_decimal(pan, "PAN", range(12, 20))
    require_decimal(pvki, "PVKI", range(1, 2))
    require_decimal(pin, "PIN", range(4, 13))
    tsp = pan[:-1][-11:] + pvki + pin[:4]
    return visa_decimalise(encrypt(bytes.fromhex(tsp)).hex().upper(), 4)


def _check_validation_inputs(validation_data: str, dectab: str) -> None:
    """Validation data is 16 hex digits (already padded); the table 16 decimal digits."""
    if len(validation_data) != 16 or not set(validation_data.upper()) <= _HEX:
        raise CryptoError("validation data must be 16 hex digits (pad it first)")
    require_decimal(dectab, "decimalisation table", range(16, 17))


def ibm3624_natural_pin(pvk: bytes, validation_data: str, dectab: str, pin_length: int) -> str:
    """The IBM 3624 'natural' PIN: encrypt the validation data, map nibbles through the table.

    The decimalisation table turns each cipher nibble 0-F into a digit, and the
    leftmost ``pin_length`` digits are the PIN the card would have with offset 0.
    """
    _check_validation_inputs(validation_data, dectab)
    if not 4 <= pin_length <= 16:
        raise CryptoError(f"PIN length {pin_length} is outside 4..16")
    cipher = encrypt_ecb(pvk, bytes.fromhex(validation_data)).hex()
    return "".join(dectab[int(nibble, 16)] for nibble in cipher)[:pin_length]


def _digitwise(a: str, b: str, sign: int) -> str:
    """Add (sign=1) or subtract (sign=-1) two digit strings column by column, no carry."""
    return "".join(str((int(x) + sign * int(y)) % 10) for x, y in zip(a, b, strict=True))


def ibm3624_offset(pvk: bytes, pin: str, validation_data: str, dectab: str) -> str:
    """Offset that turns the natural PIN into the customer's PIN (PIN - natural, mod 10)."""
    require_decimal(pin, "PIN", range(4, 17))
    natural = ibm3624_natural_pin(pvk, validation_data, dectab, len(pin))
    return _digitwise(pin, natural, -1)


def ibm3624_verify(
    pvk: bytes, pin: str, offset: str, validation_data: str, dectab: str, check_length: int
) -> bool:
    """IBM 3624 offset verification (IBM ICSF "3624 PIN Verification algorithm").

    natural + offset gives the expected PIN; its rightmost ``check_length``
    digits are compared with the rightmost digits of the entered PIN. A PIN
    whose length differs from the offset's is a wrong PIN, not bad input.
    """
    require_decimal(pin, "PIN", range(4, 17))
    require_decimal(offset, "offset", range(4, 17))
    if not 4 <= check_length <= len(offset):
        raise CryptoError(f"check length {check_length} is outside 4..{len(offset)}")
    if len(pin) != len(offset):
        return False
    natural = ibm3624_natural_pin(pvk, validation_data, dectab, len(offset))
    expected = _digitwise(natural, offset, 1)
    return expected[-check_length:] == pin[-check_length:]
