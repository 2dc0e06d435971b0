"""Key check values: how operators and partners confirm a key without revealing it."""

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.mac import aes_cmac


def kcv_des(key: bytes) -> bytes:
    """Encrypt eight zero bytes under the (single, double or triple) DES key.

    All 8 bytes are returned because payShield prints 6 or 16 hex digits
    depending on the command; callers cut what they need.
    """
    return encrypt_ecb(key, bytes(8))


def kcv_aes(key: bytes) -> bytes:
    """ANSI X9.24-1:2017 CMAC-based check value: CMAC of a zero block, leftmost 5 bytes.

    The CMAC method is used for AES instead of encrypting zeros because the
    zero-encryption value would also be a usable known plaintext/ciphertext pair.
    """
    return aes_cmac(key, bytes(16))[:5]
