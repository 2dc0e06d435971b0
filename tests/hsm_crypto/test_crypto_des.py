"""DES / triple-DES primitives against published known-answer vectors."""

from collections.abc import Callable

import pytest

from hsm_sim.crypto.des import (
    decrypt_ecb,
    encrypt_cbc,
    encrypt_ecb,
    expand_key,
    fix_parity,
    has_odd_parity,
)
from hsm_sim.crypto.errors import CryptoError

H = bytes.fromhex
FIPS81_KEY = H("0123456789ABCDEF")
FIPS81_PLAIN = b"Now is the time for all "


def test_expand_key_lengths() -> None:
    # Keying options of NIST SP 800-67 rev. 2, 3.1: K1K2 is K1K2K1, K1K2K3 stays.
    k1, k2, k3 = H("0123456789ABCDEF"), H("23456789ABCDEF01"), H("456789ABCDEF0123")
    assert expand_key(k1) == k1
    assert expand_key(k1 + k2) == k1 + k2 + k1
    assert expand_key(k1 + k2 + k3) == k1 + k2 + k3


@pytest.mark.parametrize("length", [0, 7, 9, 15, 17, 23, 25, 32])
def test_expand_key_rejects_other_lengths(length: int) -> None:
    with pytest.raises(CryptoError):
        expand_key(bytes(length))


def test_single_des_ecb_fips81_table_b1() -> None:
    # FIPS PUB 81, Appendix B, Table B1 (ECB), key 0123456789ABCDEF.
    expected = H("3FA40E8A984D4815 6A271787AB8883F9 893D51EC4B563B53")
    assert encrypt_ecb(FIPS81_KEY, FIPS81_PLAIN) == expected
    assert decrypt_ecb(FIPS81_KEY, expected) == FIPS81_PLAIN


def test_single_des_cbc_fips81_table_b2() -> None:
    # FIPS PUB 81, Appendix B, Table B2 (CBC), IV 1234567890ABCDEF.
    expected = H("E5C7CDDE872BF27C 43E934008C389C0F 683788499A7C05F6")
    assert encrypt_cbc(FIPS81_KEY, FIPS81_PLAIN, H("1234567890ABCDEF")) == expected


def test_two_key_triple_des_ecb() -> None:
    # Botan src/tests/data/block/des.vec [TripleDES] (as quoted in the Qt QCA
    # cipher unit test): key 0123456789ABCDEFFEDCBA9876543210,
    # 0123456789ABCDE7 -> 7F1D0A77826B8AFF.
    key = H("0123456789ABCDEFFEDCBA9876543210")
    assert encrypt_ecb(key, H("0123456789ABCDE7")) == H("7F1D0A77826B8AFF")
    assert decrypt_ecb(key, H("7F1D0A77826B8AFF")) == H("0123456789ABCDE7")


def test_key_with_equal_halves_is_single_des() -> None:
    # Same Botan/QCA table: K|K gives the single-DES FIPS 81 block.
    assert encrypt_ecb(FIPS81_KEY * 2, b"Now is t") == H("3FA40E8A984D4815")


@pytest.mark.parametrize("function", [encrypt_ecb, decrypt_ecb, encrypt_cbc])
def test_partial_block_is_refused(function: Callable[[bytes, bytes], bytes]) -> None:
    with pytest.raises(CryptoError):
        function(FIPS81_KEY, b"7 bytes")


def test_cbc_iv_must_be_one_block() -> None:
    with pytest.raises(CryptoError):
        encrypt_cbc(FIPS81_KEY, bytes(8), bytes(7))


def test_odd_parity_of_classic_keys() -> None:
    # FIPS 46-3: each key byte has odd parity. 0123456789ABCDEF is the FIPS 81
    # key; the payShield test LMK pair 00-01 (spec "Keys") is odd throughout.
    assert has_odd_parity(H("0123456789ABCDEF"))
    assert has_odd_parity(H("01010101010101017902CD1FD36EF8BA"))
    assert not has_odd_parity(H("0000000000000000"))


@pytest.mark.parametrize(
    ("raw", "fixed"),
    [
        # Key-generation captures published with cryptocarver's KcvCaptureTest
        # (github, com.cryptocarver.crypto.KcvCaptureTest): the key before and
        # after the tool forced odd parity.
        ("B581820EE6607130795118FCC3DA0259", "B580830EE6617031795119FDC2DA0258"),
        ("303053848D78AA1DEE5933A128BA98B8", "313152858C79AB1CEF5832A129BA98B9"),
        # FIPS 46-3 definition: the low bit of each byte is its parity bit.
        ("0000000000000000", "0101010101010101"),
    ],
)
def test_fix_parity(raw: str, fixed: str) -> None:
    assert fix_parity(H(raw)) == H(fixed)
    assert has_odd_parity(fix_parity(H(raw)))
