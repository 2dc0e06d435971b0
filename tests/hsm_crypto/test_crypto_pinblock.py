"""ISO 9564-1 PIN blocks against published vectors, and refusal of bad blocks."""

import pytest

from hsm_sim.crypto import pinblock as pb
from hsm_sim.crypto.errors import PinBlockError, PinLengthError

H = bytes.fromhex
PSEC_PAN = "5555555551234567"


def test_format_codes_follow_the_spec() -> None:
    # hsm-protocol.md: 01 ISO format 0, 05 format 1, 47 format 3, 48 format 4.
    assert pb.FORMAT_CODES == {"01": "iso0", "05": "iso1", "47": "iso3", "48": "iso4"}


def test_pan_digits_12() -> None:
    # hsm-protocol.md "Account": 12 rightmost digits excluding the check digit.
    assert pb.pan_digits_12("4012345678909") == "401234567890"
    assert pb.pan_digits_12(PSEC_PAN) == "555555123456"


@pytest.mark.parametrize("pan", ["401234567890", "40123456789A9", ""])
def test_pan_digits_12_rejects_short_or_non_decimal(pan: str) -> None:
    with pytest.raises(PinBlockError):
        pb.pan_digits_12(pan)


@pytest.mark.parametrize(
    ("pin", "pan", "block"),
    [
        # ANSI X9.24-1:2009 A.4 DUKPT test data (as in openemv/pinblock
        # test/pinblock_format0_test.c): PIN 1234, PAN 4012345678909.
        ("1234", "4012345678909", "041274EDCBA9876F"),
        # psec tests/test_pinblock.py test_encode/decode_pinblock_iso_0.
        ("1234", PSEC_PAN, "041261AAAAEDCBA9"),
        ("123456789", PSEC_PAN, "091261032D8DCBA9"),
        ("1234567890", PSEC_PAN, "0A1261032D82CBA9"),
        ("123456789012", PSEC_PAN, "0C1261032D8226A9"),
    ],
)
def test_iso0(pin: str, pan: str, block: str) -> None:
    assert pb.make_iso0(pin, pan) == H(block)
    assert pb.read_iso0(H(block), pan) == pin


@pytest.mark.parametrize(
    ("block", "pan", "error"),
    [
        # psec tests/test_pinblock.py test_decode_pinblock_iso_0_exception.
        ("241261AAAAEDCBA9", PSEC_PAN, PinBlockError),  # control field 2
        ("041261AAAAEDCB", PSEC_PAN, PinBlockError),  # 7 bytes
        ("0F1261AAAAEDCBA9", PSEC_PAN, PinLengthError),  # length 15
        ("021261AAAAEDCBA9", PSEC_PAN, PinLengthError),  # length 2
        ("041261AAAAEDCBAA", PSEC_PAN, PinBlockError),  # fill not all F
        ("051261AAAAEDCBA9", PSEC_PAN, PinBlockError),  # PIN "1234F"
        ("051261AAAAEDCBA9", "555555555123", PinBlockError),  # PAN too short
    ],
)
def test_read_iso0_refuses_bad_blocks(block: str, pan: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        pb.read_iso0(H(block), pan)


@pytest.mark.parametrize("pin", ["123", "1234567890123"])
def test_make_rejects_pin_length(pin: str) -> None:
    # psec test_encode_pinblock_iso_0_exception: PIN must be 4..12 digits.
    with pytest.raises(PinLengthError):
        pb.make_iso0(pin, PSEC_PAN)


def test_make_rejects_non_decimal_pin() -> None:
    with pytest.raises(PinBlockError):
        pb.make_iso0("123A", PSEC_PAN)


def test_iso1() -> None:
    # openemv/pinblock test/pinblock_format1_test.c: PIN 12345 -> 1512345EDCBA9876.
    assert pb.read_iso1(H("1512345EDCBA9876")) == "12345"
    assert pb.make_iso1("12345", fill=H("EDCBA98760000000")) == H("1512345EDCBA9876")


def test_iso1_random_fill_keeps_layout() -> None:
    # ISO 9564-1 format 1: control 1, length, PIN; fill is random per block.
    blocks = {pb.make_iso1("1234") for _ in range(8)}
    assert all(b.hex().upper().startswith("141234") for b in blocks)
    assert all(pb.read_iso1(b) == "1234" for b in blocks)
    assert len(blocks) > 1


@pytest.mark.parametrize("block", ["041234FFFFFFFFFF", "1F1234FFFFFFFFFF", "14123AFFFFFFFFFF"])
def test_read_iso1_refuses_bad_blocks(block: str) -> None:
    with pytest.raises(PinBlockError):
        pb.read_iso1(H(block))


@pytest.mark.parametrize(
    ("pin", "block"),
    [
        # psec tests/test_pinblock.py test_decode_pinblock_iso_3 (fill F).
        ("1234", "341261AAAAEDCBA9"),
        ("123456789", "391261032D8DCBA9"),
        ("1234567890", "3A1261032D82CBA9"),
        ("123456789012", "3C1261032D8226A9"),
    ],
)
def test_iso3(pin: str, block: str) -> None:
    assert pb.read_iso3(H(block), PSEC_PAN) == pin
    assert pb.make_iso3(pin, PSEC_PAN, fill=b"\xff" * 8) == H(block)


def test_iso3_random_fill() -> None:
    # psec test_encode_pinblock_iso_3 checks only the leading "341261"; the fill
    # is random A-F, so the block decodes back and varies.
    blocks = {pb.make_iso3("1234", PSEC_PAN) for _ in range(8)}
    assert all(b.hex().upper().startswith("341261") for b in blocks)
    assert all(pb.read_iso3(b, PSEC_PAN) == "1234" for b in blocks)
    assert len(blocks) > 1


@pytest.mark.parametrize(
    ("block", "error"),
    [
        # psec tests/test_pinblock.py test_decode_pinblock_iso_3_exception.
        ("241261AAAAEDCBA9", PinBlockError),
        ("341261AAAAEDCB", PinBlockError),
        ("3F1261AAAAEDCBA9", PinLengthError),
        ("321261AAAAEDCBA9", PinLengthError),
        ("341261AAAAEDCBA2", PinBlockError),  # fill digit 4 is not A-F
        ("351261AAAAEDCBA9", PinBlockError),  # PIN "1234F"
    ],
)
def test_read_iso3_refuses_bad_blocks(block: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        pb.read_iso3(H(block), PSEC_PAN)


def test_make_iso3_rejects_decimal_fill() -> None:
    with pytest.raises(PinBlockError):
        pb.make_iso3("1234", PSEC_PAN, fill=bytes(8))


def test_iso4_fields_x924_3() -> None:
    # ANSI X9.24-3:2017 supplement test vectors, "Calculation of AES PIN Block
    # Format 4" (as in openemv/pinblock test/pinblock_format4_test.c):
    # PIN 1234 -> 441234AAAAAAAAAA..., PAN 4111111111111111 -> 4411111111111111 1000...
    assert pb._iso4_pin_field("1234", bytes(8))[:8] == H("441234AAAAAAAAAA")
    assert pb._iso4_pan_field("4111111111111111") == H("44111111111111111000000000000000")
    # Same file, short PAN 123456789: right-justified in 12 digits, length nibble 0.
    assert pb._iso4_pan_field("123456789") == H("00001234567890000000000000000000")
    # psec test_encode_pan_field_iso_4.
    assert pb._iso4_pan_field("112233445566778899") == H("61122334455667788990000000000000")


@pytest.mark.parametrize(
    ("key", "block", "pan", "pin"),
    [
        # ep2 eft/pos 2000 Security Specification 8.0.0, 8.4 "PIN Encryption"
        # (quoted in psec tests/test_pinblock.py test_decipher_pinblock_iso_4).
        (
            "C1D0F8FB4958670DBA40AB1F3752EF0D",
            "CC17F65586BFD0953010226C4FC5B3CA",
            "432198765432109870",
            "1234",
        ),
        # psec test_decipher_pinblock_iso_4: PAN shorter than 12 digits.
        ("00112233445566778899AABBCCDDEEFF", "39B69B1B91FE05D48F7EF0D68EB2CBD6", "1", "123456"),
        # psec test_encipher_pinblock_iso_4_det (random half forced to FF..FF).
        (
            "00112233445566778899AABBCCDDEEFF",
            "28B41FDDD29B743E93124BD8E32D921E",
            "1234567890123456789",
            "1234",
        ),
    ],
)
def test_decipher_iso4(key: str, block: str, pan: str, pin: str) -> None:
    assert pb.decipher_iso4(H(block), pan, H(key)) == pin


def test_encipher_iso4_psec_deterministic() -> None:
    # psec test_encipher_pinblock_iso_4_det: random pad forced to FF * 8.
    key = H("00112233445566778899AABBCCDDEEFF")
    block = pb.encipher_iso4("1234", "1234567890123456789", key, fill=b"\xff" * 8)
    assert block == H("28B41FDDD29B743E93124BD8E32D921E")


def test_encipher_iso4_random_pad_round_trips() -> None:
    key = H("C1D0F8FB4958670DBA40AB1F3752EF0D")
    first = pb.encipher_iso4("987654", "432198765432109870", key)
    second = pb.encipher_iso4("987654", "432198765432109870", key)
    assert first != second
    assert pb.decipher_iso4(first, "432198765432109870", key) == "987654"


@pytest.mark.parametrize(
    ("key", "block", "pan", "error"),
    [
        # psec test_decipher_pinblock_iso_4_exception vectors.
        (
            "E60B15B90ABDF14CEE337C97440F0D6E",
            "7D5AF4C33667A2098626027FB7A9A1B7",
            "4266229809609384667",
            PinBlockError,  # control field 3
        ),
        (
            "C7BBEBA16C5AD97D5866450718C03750",
            "2F9C910447F17293EC95DEDE1E3CA201",
            "8220499325458689523",
            PinBlockError,  # PIN "1AB2"
        ),
        (
            "820F6C7C12355BDFF1AB6CE12E8EED89",
            "CCF310A8300B46C925A86B1098089301",
            "939589847393485609",
            PinBlockError,  # fill BBBBBBBBBB
        ),
        (
            "4FE3F0311936FBCE44F17159F1659CF09B2BF8913BB514A1",
            "51334B00A6CBA3EC7B1C6F871F060AFC",
            "2129100799029059903",
            PinLengthError,  # length 3
        ),
        (
            "C1D0F8FB4958670DBA40AB1F3752EF0D",
            "CC17F65586BFD0953010226C4FC5B3CA00",
            "432198765432109870",
            PinBlockError,  # 17 bytes
        ),
        (
            "C1D0F8FB4958670DBA40AB1F3752EF0D",
            "CC17F65586BFD0953010226C4FC5B3CA",
            "43219876543210987099",
            PinBlockError,  # 20-digit PAN
        ),
    ],
)
def test_decipher_iso4_refuses_bad_blocks(
    key: str, block: str, pan: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        pb.decipher_iso4(H(block), pan, H(key))


def test_iso4_needs_aes_key() -> None:
    with pytest.raises(PinBlockError):
        pb.encipher_iso4("1234", "4111111111111111", bytes(8))
