"""Digit helpers shared by the PIN and card verification algorithms."""

from hsm_sim.crypto.errors import CryptoError

DECIMAL = frozenset("0123456789")


def is_decimal(text: str) -> bool:
    """True for a non-empty string of ASCII digits (``str.isdigit`` also accepts '²')."""
    return text.isascii() and text.isdigit()  # ASCII digits are 0-9 only; '' is not


def require_decimal(text: str, what: str, lengths: range) -> str:
    """Return ``text`` if it is decimal with an allowed length, else raise ``CryptoError``."""
    if len(text) not in lengths or not is_decimal(text):
        raise CryptoError(f"{what} must be {lengths.start}..{lengths.stop - 1} decimal digits")
    return text


def visa_decimalise(hex_digits: str, count: int) -> str:
    """Visa PVV/CVV decimalisation: the decimal digits left to right, then A-F minus 10.

    Two passes over the cipher text keep the result uniformly spread while
    always yielding enough digits (16 nibbles give at least 16 candidates).
    """
    first = hex_digits.translate(_DROP_LETTERS)
    second = hex_digits.translate(_LETTERS_MINUS_TEN)
    return (first + second)[:count]


_HEX_LETTERS = "ABCDEFabcdef"
_DROP_LETTERS = str.maketrans("", "", _HEX_LETTERS)
# Letters become their value minus ten; digits are dropped (second pass).
_LETTERS_MINUS_TEN = str.maketrans("ABCDEFabcdef", "012345012345", "0123456789")
