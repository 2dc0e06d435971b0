"""ISO 9564-1 PIN blocks: formats 0, 1, 3 (8 bytes, DES) and 4 (16 bytes, AES).

A PIN block is built from a "plain text PIN field" (control nibble, PIN
length, PIN digits, fill) which formats 0 and 3 XOR with a field made of the
account number, so the same PIN gives different blocks on different cards.
Reading a block checks every nibble: a block that decrypts to garbage must
be refused (payShield error 20), never turned into a PIN.
"""

import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hsm_sim.crypto.digits import is_decimal
from hsm_sim.crypto.errors import PinBlockError, PinLengthError

FORMAT_CODES = {"01": "iso0", "05": "iso1", "47": "iso3", "48": "iso4"}

_MIN_PIN, _MAX_PIN = 4, 12
_FORMAT3_FILL = "ABCDEF"


def _xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR of two equal-length fields."""
    if len(a) != len(b):
        raise ValueError("XOR of fields of different lengths")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _check_pin(pin: str) -> None:
    """A PIN is 4 to 12 decimal digits (ISO 9564-1, 8.1)."""
    if not (_MIN_PIN <= len(pin) <= _MAX_PIN):
        raise PinLengthError(f"PIN length {len(pin)} is outside {_MIN_PIN}..{_MAX_PIN}")
    if not is_decimal(pin):
        raise PinBlockError("PIN must be decimal digits")


def pan_digits_12(pan: str) -> str:
    """The 12 rightmost PAN digits excluding the check digit (the HSM 'account number')."""
    if len(pan) < 13 or not is_decimal(pan):
        raise PinBlockError("PAN must be at least 13 decimal digits")
    return pan[-13:-1]


def _pan_field(pan: str) -> bytes:
    """Formats 0 and 3 account field: four zero nibbles, then the 12 PAN digits."""
    return bytes.fromhex("0000" + pan_digits_12(pan))


def _fill_digits(fill: bytes | None, count: int, alphabet: str) -> str:
    """Fill nibbles for formats 1 and 3: the caller's (for tests) or fresh random ones.

    ``fill`` supplies its hex digits left to right; format 3 allows only A-F.
    """
    if fill is None:
        return "".join(secrets.choice(alphabet) for _ in range(count))
    digits = fill.hex().upper()[:count]
    if len(digits) < count or not set(digits) <= set(alphabet):
        raise PinBlockError(f"fill must give {count} digits from {alphabet}")
    return digits


def _pin_field(control: str, pin: str, fill: str) -> bytes:
    """Control nibble, length nibble, PIN digits, then fill to 16 nibbles."""
    _check_pin(pin)
    return bytes.fromhex(f"{control}{len(pin):X}{pin}{fill}")


def _unmask(block: bytes, mask: bytes) -> str:
    """Hex of ``block XOR mask``, refusing blocks of the wrong size first."""
    if len(block) != len(mask):
        raise PinBlockError(f"PIN block must be {len(mask)} bytes, not {len(block)}")
    return _xor(block, mask).hex().upper()


def _read_pin_field(field: str, control: str, fill_ok: str | None) -> str:
    """Validate a decoded 16-nibble PIN field and return its PIN.

    ``fill_ok`` is the set of allowed fill digits (``None`` = any, format 1).
    """
    if field[0] != control:
        raise PinBlockError(f"control field {field[0]} is not {control}")
    length = int(field[1], 16)
    if not (_MIN_PIN <= length <= _MAX_PIN):
        raise PinLengthError(f"PIN length {length} is outside {_MIN_PIN}..{_MAX_PIN}")
    pin, fill = field[2 : 2 + length], field[2 + length :]
    if not is_decimal(pin):
        raise PinBlockError("PIN digits are not decimal")
    if fill_ok is not None and not set(fill) <= set(fill_ok):
        raise PinBlockError("PIN block fill digits are invalid")
    return pin


def make_iso0(pin: str, pan: str) -> bytes:
    """Format 0 (ANSI X9.8): fill F, XORed with the account field."""
    return _xor(_pin_field("0", pin, "F" * (14 - len(pin))), _pan_field(pan))


def read_iso0(block: bytes, pan: str) -> str:
    """PIN from a clear format 0 block; the fill must be all F."""
    return _read_pin_field(_unmask(block, _pan_field(pan)), "0", "F")


def make_iso1(pin: str, fill: bytes | None = None) -> bytes:
    """Format 1: no account binding, random (or transaction) fill digits.

    ``fill`` (8 bytes) gives the fill digits left to right; ``None`` draws
    them at random, as a PIN pad does.
    """
    return _pin_field("1", pin, _fill_digits(fill, 14 - len(pin), "0123456789ABCDEF"))


def read_iso1(block: bytes) -> str:
    """PIN from a clear format 1 block; any fill digit is valid."""
    return _read_pin_field(_unmask(block, bytes(8)), "1", None)


def make_iso3(pin: str, pan: str, fill: bytes | None = None) -> bytes:
    """Format 3: like format 0 but with random fill digits A-F.

    ``fill`` (8 bytes) gives the fill digits left to right and must hold only
    A-F there; ``None`` draws them at random.
    """
    field = _pin_field("3", pin, _fill_digits(fill, 14 - len(pin), _FORMAT3_FILL))
    return _xor(field, _pan_field(pan))


def read_iso3(block: bytes, pan: str) -> str:
    """PIN from a clear format 3 block; the fill must be A-F."""
    return _read_pin_field(_unmask(block, _pan_field(pan)), "3", _FORMAT3_FILL)


def _iso4_pin_field(pin: str, fill: bytes | None) -> bytes:
    """Format 4 plain text PIN field: 4, length, PIN, A fill, then 8 random bytes."""
    random_half = secrets.token_bytes(8) if fill is None else fill
    if len(random_half) != 8:
        raise PinBlockError("format 4 fill must be 8 bytes")
    return _pin_field("4", pin, "A" * (14 - len(pin))) + random_half


def _iso4_pan_field(pan: str) -> bytes:
    """Format 4 PAN field: length-12 nibble, PAN right-justified in 12 digits, zeros.

    ISO 9564-1:2017 9.4.2: PANs shorter than 12 digits are left-padded with
    zeros and get length nibble 0.
    """
    if not (1 <= len(pan) <= 19) or not is_decimal(pan):
        raise PinBlockError("PAN must be 1 to 19 decimal digits")
    digits = f"{max(0, len(pan) - 12)}{pan.rjust(12, '0')}"
    return bytes.fromhex(digits.ljust(32, "0"))


def _aes_ecb(key: bytes, block: bytes, encrypt: bool) -> bytes:
    """One AES block in either direction (format 4 needs both)."""
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    engine = cipher.encryptor() if encrypt else cipher.decryptor()
    return engine.update(block) + engine.finalize()


def _check_aes_key(key: bytes) -> None:
    """Format 4 is defined for AES-128/192/256 only."""
    if len(key) not in (16, 24, 32):
        raise PinBlockError(f"AES key must be 16, 24 or 32 bytes, not {len(key)}")


def encipher_iso4(pin: str, pan: str, aes_key: bytes, fill: bytes | None = None) -> bytes:
    """Format 4 enciphered block: E(K, E(K, PIN field) XOR PAN field).

    The PAN is bound by the chaining step rather than a plain XOR, so the
    clear PIN field never exists next to a PAN-dependent value. ``fill`` is
    the 8-byte random right half of the PIN field (``None`` = fresh random).
    """
    _check_aes_key(aes_key)
    pan_field = _iso4_pan_field(pan)
    block_a = _aes_ecb(aes_key, _iso4_pin_field(pin, fill), encrypt=True)
    return _aes_ecb(aes_key, _xor(block_a, pan_field), encrypt=True)


def decipher_iso4(block: bytes, pan: str, aes_key: bytes) -> str:
    """Reverse of :func:`encipher_iso4`, then check the PIN field like any other block."""
    _check_aes_key(aes_key)
    if len(block) != 16:
        raise PinBlockError("format 4 PIN block must be 16 bytes")
    block_b = _aes_ecb(aes_key, block, encrypt=False)
    field = _aes_ecb(aes_key, _xor(block_b, _iso4_pan_field(pan)), encrypt=False)
    return _read_pin_field(field[:8].hex().upper(), "4", "A")
