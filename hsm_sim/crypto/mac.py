"""Message authentication codes used on payment links.

ISO/IEC 9797-1 algorithm 1 (CBC-MAC) and algorithm 3 (the "retail MAC" of
ANSI X9.19) cover the DES-era TAK/ZAK keys; AES-CMAC (NIST SP 800-38B,
RFC 4493) covers AES keys and AES key check values.
"""

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from hsm_sim.crypto.des import BLOCK, decrypt_ecb, encrypt_cbc, encrypt_ecb
from hsm_sim.crypto.errors import CryptoError


def _zero_fill(data: bytes) -> bytes:
    """Append as few zero bytes as needed to reach a block boundary."""
    return data + bytes(-len(data) % BLOCK)


def _pad_none(data: bytes) -> bytes:
    """payShield padding 0: the caller promises whole blocks, so check instead of padding."""
    if not data or len(data) % BLOCK:
        raise CryptoError("padding 0 needs a non-empty multiple of 8 bytes")
    return data


def _pad_method1(data: bytes) -> bytes:
    """ISO 9797-1 method 1: zeros up to a *positive* multiple of the block, so b'' -> 1 block."""
    return _zero_fill(data) if data else bytes(BLOCK)


def _pad_method2(data: bytes) -> bytes:
    """ISO 9797-1 method 2: always a 0x80 byte, then zeros; unambiguous for any data."""
    return _zero_fill(data + b"\x80")


def _pad_method3(data: bytes) -> bytes:
    """ISO 9797-1 method 3: a block holding the bit length, then method 1 on the data."""
    return (len(data) * 8).to_bytes(BLOCK, "big") + _pad_method1(data)


_PADDINGS = {0: _pad_none, 1: _pad_method1, 2: _pad_method2, 3: _pad_method3}


def pad(data: bytes, method: int) -> bytes:
    """Pad for MAC computation with ISO 9797-1 method 1, 2 or 3 (0 = already padded).

    Methods are numbered as in ISO 9797-1 and in payShield's M6/M8 padding
    field, so the command value passes straight through.
    """
    try:
        return _PADDINGS[method](data)
    except KeyError:
        raise CryptoError(f"unknown ISO 9797-1 padding method {method!r}") from None


def iso9797_alg1(key: bytes, data: bytes, padding: int = 1) -> bytes:
    """ISO 9797-1 MAC algorithm 1: last block of CBC encryption with a zero IV.

    With a single-length key this is the ANSI X9.9 / FIPS 113 MAC; with a
    double-length key it is the full triple-DES CBC-MAC.
    """
    return encrypt_cbc(key, pad(data, padding))[-BLOCK:]


def iso9797_alg3(key16: bytes, data: bytes, padding: int = 1) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC) with a double-length key.

    Single DES under K1 over all blocks keeps the MAC cheap; the final
    decrypt-K2/encrypt-K1 step gives the output transformation the strength
    of triple DES.
    """
    if len(key16) != 16:
        raise CryptoError(f"retail MAC key must be 16 bytes, not {len(key16)}")
    k1, k2 = key16[:BLOCK], key16[BLOCK:]
    chained = encrypt_cbc(k1, pad(data, padding))[-BLOCK:]
    return encrypt_ecb(k1, decrypt_ecb(k2, chained))


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B): the MAC of AES keys and the basis of AES KCVs."""
    if len(key) not in (16, 24, 32):
        raise CryptoError(f"AES key must be 16, 24 or 32 bytes, not {len(key)}")
    try:
        mac = CMAC(algorithms.AES(key))
    except UnsupportedAlgorithm as exc:  # pragma: no cover - backend without AES
        raise CryptoError(str(exc)) from exc
    mac.update(data)
    return mac.finalize()
