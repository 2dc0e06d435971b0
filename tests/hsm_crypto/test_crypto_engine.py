"""Kept cipher contexts give what fresh ones give, call after call, in any order."""

from __future__ import annotations

import random

import pytest

from hsm_sim.crypto import des, engine, mac
from hsm_sim.crypto.errors import CryptoError

KEYS = {
    "single": bytes.fromhex("0123456789ABCDEF"),
    "double": bytes.fromhex("7CA110454A1A6E570131D9619DC1376E"),
    "triple": bytes.fromhex("0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"),
}


def _messages(seed: int, count: int = 40) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 300)) for _ in range(count)]


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_engine_ecb_and_cbc_mac_match_fresh_contexts_call_after_call(key: bytes) -> None:
    kept = engine.DesEngine(key)
    for data in _messages(1):
        blocks = data[: len(data) - len(data) % 8]
        assert kept.encrypt_ecb(blocks) == des.encrypt_ecb(key, blocks)
        assert kept.decrypt_ecb(blocks) == des.decrypt_ecb(key, blocks)
        if blocks:  # the CBC context's chaining must not leak into the next MAC
            assert kept.cbc_mac(blocks) == des.encrypt_cbc(key, blocks)[-8:]


def test_engine_refuses_partial_blocks_and_empty_mac_input() -> None:
    kept = engine.DesEngine(KEYS["double"])
    with pytest.raises(CryptoError):
        kept.encrypt_ecb(bytes(7))
    with pytest.raises(CryptoError):
        kept.cbc_mac(bytes(9))
    with pytest.raises(CryptoError):
        kept.cbc_mac(b"")


@pytest.mark.parametrize("padding", [1, 2, 3])
def test_working_key_macs_match_the_mac_module(padding: int) -> None:
    double = engine.WorkingKey(KEYS["double"])
    single = engine.WorkingKey(KEYS["single"])
    for data in _messages(padding):
        assert engine.iso9797_alg3(double, data, padding) == mac.iso9797_alg3(
            KEYS["double"], data, padding
        )
        assert engine.iso9797_alg1(single, data, padding) == mac.iso9797_alg1(
            KEYS["single"], data, padding
        )
        assert engine.iso9797_alg1(double, data, padding) == mac.iso9797_alg1(
            KEYS["double"], data, padding
        )


def test_working_key_cmac_matches_a_fresh_cmac() -> None:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.cmac import CMAC

    key = engine.WorkingKey(KEYS["double"])
    for data in _messages(7):
        fresh = CMAC(TripleDES(des.expand_key(KEYS["double"])))
        fresh.update(data)
        assert engine.des_cmac(key, data, 0) == fresh.finalize()


def test_retail_mac_needs_a_double_length_key() -> None:
    with pytest.raises(CryptoError, match="16 bytes"):
        engine.iso9797_alg3(engine.WorkingKey(KEYS["single"]), b"data", 1)
