"""DES and triple DES as payment HSMs use them.

Payment keys come in three lengths (single, double K1K2, triple) while
``cryptography`` only accepts 24-byte triple DES keys without a deprecation
warning, so every key is widened to K1K2K3 form before use. Single DES is
triple DES with K|K|K, which is the standard way to run it on a TDEA engine.
"""

from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:  # cryptography >= 43 moved TripleDES here
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

from hsm_sim.crypto.errors import CryptoError

BLOCK = 8


def expand_key(key: bytes) -> bytes:
    """Return K (8), K1K2K1 (from 16) or K1K2K3 (24): the forms a DES engine takes.

    Two-key triple DES is deprecated in ``cryptography``; K1K2K1 is the same
    cipher spelt as three keys.
    """
    if len(key) == 8 or len(key) == 24:
        return key
    if len(key) == 16:
        return key + key[:8]
    raise CryptoError(f"DES key must be 8, 16 or 24 bytes, not {len(key)}")


def cipher_key(key: bytes) -> bytes:
    """24-byte key for the TDEA engine; single DES becomes K|K|K (EDE = E)."""
    wide = expand_key(key)
    return wide * 3 if len(wide) == 8 else wide


def check_blocks(data: bytes) -> None:
    """Reject data that is not whole 8-byte blocks: HSM ciphers never pad implicitly."""
    if len(data) % BLOCK:
        raise CryptoError(f"data length {len(data)} is not a multiple of {BLOCK}")


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks independently (key wrapping, PIN blocks, KCVs)."""
    check_blocks(data)
    encryptor = Cipher(TripleDES(cipher_key(key)), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    """Inverse of :func:`encrypt_ecb`."""
    check_blocks(data)
    decryptor = Cipher(TripleDES(cipher_key(key)), modes.ECB()).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def encrypt_cbc(key: bytes, data: bytes, iv: bytes = bytes(BLOCK)) -> bytes:
    """CBC encryption; its last block is the CBC-MAC that ISO 9797-1 builds on."""
    check_blocks(data)
    if len(iv) != BLOCK:
        raise CryptoError(f"IV must be {BLOCK} bytes, not {len(iv)}")
    encryptor = Cipher(TripleDES(cipher_key(key)), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _odd_byte(value: int) -> bool:
    """True when the byte has an odd number of 1 bits (DES parity convention)."""
    return bin(value).count("1") % 2 == 1


def has_odd_parity(key: bytes) -> bool:
    """DES keys carry one parity bit per byte and HSMs reject keys whose bytes are even."""
    return all(_odd_byte(b) for b in key)


def fix_parity(key: bytes) -> bytes:
    """Flip the low (parity) bit of every even byte so the key passes HSM parity checks."""
    return bytes(b if _odd_byte(b) else b ^ 1 for b in key)
