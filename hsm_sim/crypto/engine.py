"""Cipher contexts of one working key, built once and reused: building them is the cost.

``cryptography`` makes a fresh OpenSSL context (key schedule included) for
every ``Cipher(...).encryptor()``, and for an HSM that uses the same few
working keys on every command that was most of an operation's CPU. An ECB
context keeps no state between blocks, so one per direction serves every
call (``update`` only, never ``finalize``). A CBC context keeps its last
ciphertext block as the next IV; a CBC-MAC with a zero IV is had by XORing
that block into the first block of the data, which cancels it.

An engine is not thread-safe: it belongs to the thread that runs the HSM.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.cmac import CMAC

from hsm_sim.crypto.des import BLOCK, TripleDES, check_blocks, cipher_key, expand_key
from hsm_sim.crypto.errors import CryptoError
from hsm_sim.crypto.mac import pad


class DesEngine:
    """ECB both ways and zero-IV CBC-MAC under one DES key (8, 16 or 24 bytes)."""

    def __init__(self, key: bytes) -> None:
        wide = cipher_key(key)
        ecb = Cipher(TripleDES(wide), modes.ECB())
        self._encrypt = ecb.encryptor()
        self._decrypt = ecb.decryptor()
        self._cbc = Cipher(TripleDES(wide), modes.CBC(bytes(BLOCK))).encryptor()
        self._chain = 0  # the CBC context's last output block, as an integer

    def encrypt_ecb(self, data: bytes) -> bytes:
        check_blocks(data)
        return self._encrypt.update(data)

    def decrypt_ecb(self, data: bytes) -> bytes:
        check_blocks(data)
        return self._decrypt.update(data)

    def cbc_mac(self, data: bytes) -> bytes:
        """The last block of CBC encryption of ``data`` (whole blocks) with a zero IV."""
        check_blocks(data)
        if not data:
            raise CryptoError("CBC-MAC of no data")
        first = (int.from_bytes(data[:BLOCK], "big") ^ self._chain).to_bytes(BLOCK, "big")
        last = self._cbc.update(first + data[BLOCK:])[-BLOCK:]
        self._chain = int.from_bytes(last, "big")
        return last


class WorkingKey:
    """A clear working key inside the HSM, with the engines its operations need."""

    def __init__(self, clear: bytes) -> None:
        self.clear = clear

    @cached_property
    def engine(self) -> DesEngine:
        return DesEngine(self.clear)

    @cached_property
    def halves(self) -> tuple[DesEngine, DesEngine]:
        """Engines of K1 and K2 of a double-length key (the retail MAC's single DES)."""
        if len(self.clear) != 16:
            raise CryptoError(f"retail MAC key must be 16 bytes, not {len(self.clear)}")
        return DesEngine(self.clear[:BLOCK]), DesEngine(self.clear[BLOCK:])

    @cached_property
    def _cmac(self) -> CMAC:
        wide = expand_key(self.clear)
        return CMAC(TripleDES(wide * 3 if len(wide) == 8 else wide))

    def cmac(self, data: bytes) -> bytes:
        """CMAC (ISO 9797-1 algorithm 5): a copy of a keyed CMAC costs less than a new one."""
        engine = self._cmac.copy()
        engine.update(data)
        return engine.finalize()


def iso9797_alg1(key: WorkingKey, data: bytes, padding: int) -> bytes:
    """``mac.iso9797_alg1`` with the key's kept contexts."""
    return key.engine.cbc_mac(pad(data, padding))


def iso9797_alg3(key: WorkingKey, data: bytes, padding: int) -> bytes:
    """``mac.iso9797_alg3`` (X9.19 retail MAC) with the key's kept contexts."""
    k1, k2 = key.halves
    return k1.encrypt_ecb(k2.decrypt_ecb(k1.cbc_mac(pad(data, padding))))


def des_cmac(key: WorkingKey, data: bytes, padding: int) -> bytes:
    """CMAC pads by its own rule: ``padding`` is ignored, as payShield does."""
    return key.cmac(data)


MacFunction = Callable[[WorkingKey, bytes, int], bytes]
