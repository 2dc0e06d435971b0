"""Visa CVV / Mastercard CVC (and CVV2, iCVV: the same algorithm, other service codes)."""

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.digits import require_decimal, visa_decimalise
from hsm_sim.crypto.errors import CryptoError


def _xor(a: bytes, b: bytes) -> bytes:
    """Byte-wise XOR of two 8-byte blocks."""
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def visa_cvv(cvk: bytes, pan: str, expiry: str, service_code: str) -> str:
    """Three-digit card verification value under the CVK pair A|B.

    PAN, expiry (YYMM) and service code are packed into two zero-padded blocks;
    block 1 is encrypted under key A alone, XORed into block 2, and the result
    triple-DES encrypted (E_A D_B E_A) so both keys are needed (IBM ICSF
    "CVV generation algorithm", payShield CW).
    """
    if len(cvk) != 16:
        raise CryptoError(f"CVK must be a 16-byte key pair, not {len(cvk)} bytes")
    require_decimal(pan, "PAN", range(1, 20))
    require_decimal(expiry, "expiry", range(4, 5))
    require_decimal(service_code, "service code", range(3, 4))
    data = bytes.fromhex((pan + expiry + service_code).ljust(32, "0"))
    chained = _xor(encrypt_ecb(cvk[:8], data[:8]), data[8:])
    return visa_decimalise(encrypt_ecb(cvk, chained).hex().upper(), 3)
