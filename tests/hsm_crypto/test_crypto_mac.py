"""ISO 9797-1 padding and MACs, AES-CMAC, against published vectors."""

import pytest

from hsm_sim.crypto.errors import CryptoError
from hsm_sim.crypto.mac import aes_cmac, iso9797_alg1, iso9797_alg3, pad

H = bytes.fromhex


@pytest.mark.parametrize(
    ("method", "data", "padded"),
    [
        # psec tests/test_mac.py (github knovichikhin/psec), 8-byte blocks.
        (1, "1234", "1234000000000000"),
        (1, "1234567890123456", "1234567890123456"),
        (2, "1234", "1234800000000000"),
        (2, "12345678901234", "1234567890123480"),
        (2, "1234567890123456", "12345678901234568000000000000000"),
        (3, "1234", "00000000000000101234000000000000"),
        (3, "1234567890123456", "00000000000000401234567890123456"),
        # ISO/IEC 9797-1 method 1 pads to a *positive* multiple of the block
        # length, so empty data becomes one zero block (psec: pad_iso_1(b"") -> zeros).
        (1, "", "0000000000000000"),
        # Method 2 always adds the 0x80 byte (psec: pad_iso_2(b"", 4) -> 80000000).
        (2, "", "8000000000000000"),
        # Method 3 on empty data: length block, then one zero block (psec:
        # pad_iso_3(b"", 4) -> 00000000 00000000, here with 8-byte blocks).
        (3, "", "0000000000000000 0000000000000000"),
        # payShield M6 padding 0: data already in whole blocks is left alone.
        (0, "1234567890123456", "1234567890123456"),
    ],
)
def test_pad(method: int, data: str, padded: str) -> None:
    assert pad(H(data), method) == H(padded)


@pytest.mark.parametrize("method", [-1, 4, 9])
def test_pad_rejects_unknown_method(method: int) -> None:
    with pytest.raises(CryptoError):
        pad(b"abc", method)


@pytest.mark.parametrize("data", [b"", b"abc"])
def test_pad_none_needs_whole_blocks(data: bytes) -> None:
    with pytest.raises(CryptoError):
        pad(data, 0)


def test_alg1_single_des_fips113() -> None:
    # FIPS PUB 113 / ANSI X9.9 DAC as in Bouncy Castle MacTest ("standard DAC -
    # zero IV", vectors from FIPS 81 and FIPS 113): key 0123456789ABCDEF,
    # "7654321 Now is the time for " zero-padded, MAC f1d30f68 (leftmost 32 bits).
    data = H("37363534333231204E6F77206973207468652074696D6520666F7220")
    assert iso9797_alg1(H("0123456789ABCDEF"), data)[:4] == H("F1D30F68")


def test_alg1_triple_des_bouncy_castle() -> None:
    # Bouncy Castle MacTest "64bit DESede Mac": key 7CA110454A1A6E570131D9619DC1376E,
    # "Hello World !!!!" -> 862304D33AF01096.
    key = H("7CA110454A1A6E570131D9619DC1376E")
    assert iso9797_alg1(key, b"Hello World !!!!") == H("862304D33AF01096")


@pytest.mark.parametrize(
    ("padding", "mac"),
    [
        # psec tests/test_mac.py test_generate_cbc_mac: key AAAA...BBBB..., b"hello world".
        (1, "68D9038F23360DF3"),
        (2, "32DC341271ACCD00"),
        (3, "CDACA53E2DAA5412"),
    ],
)
def test_alg1_psec_vectors(padding: int, mac: str) -> None:
    key = H("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB")
    assert iso9797_alg1(key, b"hello world", padding) == H(mac)


def test_alg3_bouncy_castle() -> None:
    # Bouncy Castle ISO9797Alg3MacTest: key 7CA110454A1A6E570131D9619DC1376E,
    # "Hello World !!!!" -> F09B856213BAB83B.
    key = H("7CA110454A1A6E570131D9619DC1376E")
    assert iso9797_alg3(key, b"Hello World !!!!") == H("F09B856213BAB83B")


@pytest.mark.parametrize(
    ("data", "mac"),
    [
        # ICAO Doc 9303 part 11, Appendix D.3 (BAC mutual authentication):
        # K_MAC 7962D9ECE03D1ACD4C76089DCE131543, retail MAC with method 2 padding.
        (
            "72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2",
            "5F1448EEA8AD90A7",
        ),
        (
            "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F",
            "2F2D235D074D7449",
        ),
    ],
)
def test_alg3_icao_9303(data: str, mac: str) -> None:
    assert iso9797_alg3(H("7962D9ECE03D1ACD4C76089DCE131543"), H(data), 2) == H(mac)


@pytest.mark.parametrize(
    ("padding", "mac"),
    [
        # psec tests/test_mac.py test_generate_retail_mac: key1 b"A"*16 and key2
        # b"B"*16 are each single DES (equal halves), so K1=41..41, K2=42..42.
        (1, "3DDE5C5511661CBF"),
        (2, "E16941032C3BC7D4"),
        (3, "BA90F750EF43F668"),
    ],
)
def test_alg3_psec_vectors(padding: int, mac: str) -> None:
    key = H("4141414141414141 4242424242424242")
    assert iso9797_alg3(key, b"hello world", padding) == H(mac)


@pytest.mark.parametrize("length", [8, 24])
def test_alg3_needs_double_length_key(length: int) -> None:
    with pytest.raises(CryptoError):
        iso9797_alg3(bytes(length), b"data")


def test_alg1_rejects_bad_key_length() -> None:
    with pytest.raises(CryptoError):
        iso9797_alg1(bytes(12), b"data")


RFC4493_KEY = H("2B7E151628AED2A6ABF7158809CF4F3C")
RFC4493_MESSAGE = H(
    "6BC1BEE22E409F96E93D7E117393172A"
    "AE2D8A571E03AC9C9EB76FAC45AF8E51"
    "30C81C46A35CE411E5FBC1191A0A52EF"
    "F69F2445DF4F9B17AD2B417BE66C3710"
)


@pytest.mark.parametrize(
    ("length", "mac"),
    [
        # RFC 4493 section 4, examples 1-4 (= NIST SP 800-38B CMAC-AES128 examples).
        (0, "BB1D6929E95937287FA37D129B756746"),
        (16, "070A16B46B4D4144F79BDD9DD04A287C"),
        (40, "DFA66747DE9AE63030CA32611497C827"),
        (64, "51F0BEBF7E3B9D92FC49741779363CFE"),
    ],
)
def test_aes_cmac_rfc4493(length: int, mac: str) -> None:
    assert aes_cmac(RFC4493_KEY, RFC4493_MESSAGE[:length]) == H(mac)


def test_aes_cmac_rejects_des_key() -> None:
    with pytest.raises(CryptoError):
        aes_cmac(bytes(8), b"")
