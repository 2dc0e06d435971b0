"""Card data protection: PAN masking and the keyed hashes of PANs and requests."""

from __future__ import annotations

import hashlib
import stat

import pytest

from switch.cardholder import Hasher, load_or_create_key, mask_pan

KEY_A = b"a" * 32
KEY_B = b"b" * 32

REQUEST = {
    "t": "0200",
    "p": "F23A000000000000",
    "2": "4111111111111111",
    "3": "500000",
    "4": "000000012345",
    "7": "1122101500",
    "11": "000123",
    "32": "100001",
    "41": "ATM00001",
    "48": "BL006UTIL01AC0071000001",
    "49": "944",
}


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("4111111111111111", "411111******1111"),
        ("4111111111111111234", "411111*********1234"),
        ("4111111111111", "411111***1111"),
        ("411111111111", "************"),
        ("", ""),
    ],
)
def test_mask_pan_keeps_first_six_and_last_four(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked
    assert len(mask_pan(pan)) == len(pan)


def test_masked_pan_never_shows_the_middle_digits() -> None:
    pan = "5300123456789012"
    assert "123456" not in mask_pan(pan)[6:-4]
    assert mask_pan(pan)[6:-4] == "*" * 6


def test_pan_hash_is_keyed() -> None:
    pan = "4111111111111111"
    a, b = Hasher(KEY_A), Hasher(KEY_B)
    assert a.pan(pan) == Hasher(KEY_A).pan(pan)
    assert a.pan(pan) != b.pan(pan)
    assert a.pan(pan) != hashlib.sha256(pan.encode()).hexdigest()
    assert len(a.pan(pan)) == 64 and int(a.pan(pan), 16) >= 0
    assert a.pan(pan) != a.pan("4111111111111112")


def test_request_hash_is_keyed_and_stable() -> None:
    a = Hasher(KEY_A)
    assert a.request("0200", REQUEST) == a.request("0200", dict(reversed(list(REQUEST.items()))))
    assert a.request("0200", REQUEST) != Hasher(KEY_B).request("0200", REQUEST)
    assert len(a.request("0200", REQUEST)) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"64": b"\x01\x02\x03\x04\x05\x06\x07\x08".hex()},  # a MAC
        {"128": "0102030405060708"},  # a secondary MAC
        {"p": "F23A000000000001"},  # the bitmap
        {"1": "0000000000000001"},  # the secondary bitmap
        {"t": "0201"},  # the repeat MTI digit
        {"52": "0123456789ABCDEF", "53": "4700000000000000"},  # a re-encrypted PIN block
        {"35": "4111111111111111=30121010000000000000"},  # track 2
        {"12": "235959", "13": "1231", "37": "000000000042", "22": "051"},  # not content
        {"14": "3012", "18": "6011", "42": "AGENT0000000001", "43": "x" * 40},
        {"7": "1122101501", "11": "000124", "32": "100002", "41": "ATM00002"},  # the key's
    ],
)
def test_request_hash_covers_only_the_financial_content(change: dict[str, str]) -> None:
    """Spec section 5: MTI (repeat counts as original), DE 3, 4, 49, 48, 2; nothing derived
    from sensitive authentication data (DE 35, 52) is part of what is stored."""
    a = Hasher(KEY_A)
    assert a.request("0200", {**REQUEST, **change}) == a.request("0200", REQUEST)


def test_request_hash_of_sensitive_data_alone_is_that_of_no_request() -> None:
    a = Hasher(KEY_A)
    assert a.request("0200", {"35": "4111111111111111=3012", "52": "00" * 8}) == a.request(
        "0200", {}
    )


@pytest.mark.parametrize(
    "change",
    [
        {"4": "000000012346"},
        {"48": "BL006UTIL01AC0071000002"},
        {"49": "840"},
        {"2": "4111"},
        {"3": "501000"},
        {"90": "0200000123112210150000000100001" + "0" * 11},  # what a reversal reverses
        {"95": "000000000100" + "0" * 30},  # and what is kept
    ],
)
def test_request_hash_covers_the_content(change: dict[str, str]) -> None:
    a = Hasher(KEY_A)
    assert a.request("0200", {**REQUEST, **change}) != a.request("0200", REQUEST)
    without = {k: v for k, v in REQUEST.items() if k != "49"}
    assert a.request("0200", without) != a.request("0200", REQUEST)


def test_request_hash_depends_on_the_base_mti() -> None:
    a = Hasher(KEY_A)
    advice = {**REQUEST, "t": "0221"}
    assert a.request("0220", advice) == a.request("0220", {**REQUEST, "t": "0220"})
    assert a.request("0220", advice) != a.request("0200", REQUEST)


def test_hash_key_is_created_once_and_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "home" / "hash.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert load_or_create_key(tmp_path / "other.key") != key
