"""Dialect: pyiso8583 pinned to host-interface.md, with every failure as IsoFormatError."""

import random
from types import MappingProxyType

import iso8583.specs
import pytest

from iso.dialect import (
    SPEC,
    base_mti,
    decode_message,
    encode_message,
    mac_field,
    mac_input,
    response_mti,
    with_mac,
)
from iso.errors import IsoFormatError

TRACK2 = "4000001234567899=25121010000012300000"

PAYMENT = {
    "t": "0200",
    "2": "4000001234567899",
    "3": "500000",
    "4": "000000012345",
    "7": "0301104512",
    "11": "000123",
    "12": "144512",
    "13": "0301",
    "22": "021",
    "32": "12345678",
    "35": TRACK2,
    "37": "406110000123",
    "41": "ATM00001",
    "42": "AGENT0000000001",
    "48": "BL005WATERAC0101234567890",
    "49": "944",
    "52": "00112233445566AA",
    "53": "0100000000000000",
}

RECONCILIATION = {
    "t": "0500",
    "7": "0301235959",
    "11": "000900",
    "32": "12345678",
    "74": "0000000010",
    "75": "0000000001",
    "76": "0000000003",
    "77": "0000000000",
    "86": "0000000000150000",
    "87": "0000000000001000",
    "88": "0000000000020000",
    "89": "0000000000000000",
    "97": "D0000000000129000",
    "128": "0102030405060708",
}


def _bitmap(*fields: int) -> bytes:
    """Primary bitmap with the given bits set (all <= 64)."""
    value = sum(1 << (64 - field) for field in fields)
    return value.to_bytes(8, "big")


# --- SPEC -------------------------------------------------------------------


def test_spec_overrides_only_what_the_contract_changes() -> None:
    default = iso8583.specs.default
    changed = {key for key in default if SPEC[key] != default[key]}
    assert changed == {"54"}
    assert SPEC["54"]["max_len"] == 120
    assert SPEC["h"]["max_len"] == 0


def test_spec_is_a_copy() -> None:
    assert SPEC is not iso8583.specs.default
    assert iso8583.specs.default["54"]["max_len"] == 240


@pytest.mark.parametrize("field", ["52", "64", "96", "128"])
def test_binary_fields_are_raw_8_bytes(field: str) -> None:
    assert SPEC[field]["data_enc"] == "b"
    assert SPEC[field]["max_len"] == 8


@pytest.mark.parametrize(
    ("field", "len_type", "max_len"),
    [("2", 2, 19), ("32", 2, 11), ("35", 2, 37), ("48", 3, 999), ("54", 3, 120), ("102", 2, 28)],
)
def test_variable_fields(field: str, len_type: int, max_len: int) -> None:
    assert (SPEC[field]["len_type"], SPEC[field]["max_len"]) == (len_type, max_len)
    assert SPEC[field]["len_enc"] == "ascii"


@pytest.mark.parametrize(
    ("field", "size"),
    [("3", 6), ("4", 12), ("7", 10), ("11", 6), ("28", 9), ("37", 12), ("38", 6), ("39", 2),
     ("41", 8), ("42", 15), ("43", 40), ("49", 3), ("53", 16), ("70", 3), ("74", 10),
     ("86", 16), ("90", 42), ("95", 42), ("97", 17)],
)  # fmt: skip
def test_fixed_fields(field: str, size: int) -> None:
    assert (SPEC[field]["len_type"], SPEC[field]["max_len"]) == (0, size)
    assert SPEC[field]["data_enc"] == "ascii"


# --- encode / decode ----------------------------------------------------------


@pytest.mark.parametrize("fields", [PAYMENT, RECONCILIATION], ids=["0200", "0500"])
def test_round_trip(fields: dict[str, str]) -> None:
    decoded = decode_message(encode_message(fields))
    assert {k: v for k, v in decoded.items() if k not in ("p", "1")} == fields


def test_layout_is_ascii_mti_raw_bitmap_ascii_lengths() -> None:
    raw = encode_message({"t": "0200", "3": "500000", "48": "BL001X", "52": "00112233445566AA"})
    expected = b"0200" + _bitmap(3, 48, 52) + b"500000" + b"006BL001X"
    assert raw == expected + bytes.fromhex("00112233445566AA")


def test_secondary_bitmap_only_when_needed() -> None:
    primary_only = decode_message(encode_message({"t": "0800", "11": "000001"}))
    assert "1" not in primary_only
    with_secondary = decode_message(encode_message({"t": "0800", "11": "000001", "70": "301"}))
    assert with_secondary["p"].startswith("8")
    assert with_secondary["1"] == "0400000000000000"


def test_binary_fields_decode_as_uppercase_hex() -> None:
    decoded = decode_message(encode_message({"t": "0200", "52": "00112233445566aa"}))
    assert decoded["52"] == "00112233445566AA"


def test_encode_does_not_mutate_the_callers_mapping() -> None:
    fields = dict(RECONCILIATION, p="FFFFFFFFFFFFFFFF", **{"1": "0000000000000000"})
    snapshot = dict(fields)
    encode_message(fields)
    assert fields == snapshot
    encode_message(MappingProxyType(RECONCILIATION))  # read-only mappings work too


def test_supplied_bitmaps_are_recomputed() -> None:
    raw = encode_message({"t": "0800", "p": "FFFFFFFFFFFFFFFF", "11": "000001"})
    assert decode_message(raw)["p"] == "0020000000000000"


def test_returns_bytes() -> None:
    assert type(encode_message({"t": "0800", "11": "000001"})) is bytes


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"3": "500000"}, "t"),
        ({"t": "200"}, "t"),
        ({"t": "02A0"}, "t"),
        ({"t": "0200", "foo": "x"}, "foo"),
        ({"t": "0200", "65": "0000000000000000"}, "65"),
        ({"t": "0200", "129": "x"}, "129"),
        ({"t": "0200", "4": 12345}, "4"),
        ({"t": "0200", "4": "12345"}, "4"),
        ({"t": "0200", "4": "00000001234X"}, "4"),
        ({"t": "0200", "2": "4000 0012 3456"}, "2"),
        ({"t": "0200", "32": "ACQ1"}, "32"),
        ({"t": "0200", "48": "NM009Гильман"}, "48"),
        ({"t": "0200", "48": "x" * 1000}, "48"),
        ({"t": "0210", "54": "0" * 121}, "54"),
        ({"t": "0200", "52": "not hex!00000000"}, "52"),
        ({"t": "0200", "52": "0011"}, "52"),
        ({"t": "0200", "41": "ATM\n0001"}, "41"),
        ({"t": "0200", "41": "ATM\x7f0001"}, "41"),
        ({"t": "0200", "41": "ATM\xa00001"}, "41"),
        ({"t": "0200", "11": "00012\u00b2"}, "11"),
        ({"t": "0200", "11": "00012\u0663"}, "11"),
    ],
)
def test_encode_rejects(fields: dict[str, object], field: str) -> None:
    with pytest.raises(IsoFormatError) as info:
        encode_message(fields)  # type: ignore[arg-type]
    assert info.value.field == field


GOOD = encode_message({"t": "0200", "3": "500000", "4": "000000012345", "48": "BL001X"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "t"),
        (b"02", "t"),
        (b"\xff\xfe\xfd\xfc" + GOOD[4:], "t"),
        (b"02A0" + GOOD[4:], "t"),
        (b"0200", "p"),
        (b"0200\x30\x00", "p"),
        (GOOD + b"X", "48"),
        (GOOD[:-1], "48"),
        (b"0200" + _bitmap(3) + b"50000A", "3"),
        (b"0200" + _bitmap(4) + b"0000000123 5", "4"),
        (b"0200" + _bitmap(11) + b"\xd9\xa0\xd9\xa1\xd9\xa2", "11"),
        (b"0200" + _bitmap(32) + b"04ACQ1", "32"),
        (b"0200" + _bitmap(32) + b"1X12345678901", "32"),
        (b"0200" + _bitmap(32) + b"1212345678901", "32"),
        (b"0200" + _bitmap(48) + b"003AB\x01", "48"),
        (b"0200" + _bitmap(48) + b"003AB\xc3", "48"),
        (b"0210" + _bitmap(54) + b"121" + b"0" * 121, "54"),
        (b"0200" + _bitmap(1, 3) + b"500000", "1"),
    ],
)
def test_decode_rejects(raw: bytes, field: str) -> None:
    with pytest.raises(IsoFormatError) as info:
        decode_message(raw)
    assert info.value.field == field


def test_decode_rejects_tertiary_bitmap() -> None:
    raw = b"0800" + _bitmap(1) + _bitmap(1) + _bitmap(1) + b"x"
    with pytest.raises(IsoFormatError) as info:
        decode_message(raw)
    assert info.value.field == "65"


def test_decode_accepts_bytearray() -> None:
    assert decode_message(bytearray(GOOD))["4"] == "000000012345"


def test_errors_never_show_track_data() -> None:
    raw = encode_message(PAYMENT)
    at = raw.index(TRACK2.encode())
    corruptions = [
        raw[: at + 10],  # truncated inside DE 35
        raw[:at] + b"\x01" + raw[at + 1 :],  # control byte in DE 35
        raw[: at - 2] + b"99" + raw[at:],  # DE 35 length beyond its maximum
        raw + TRACK2.encode(),  # trailing bytes
    ]
    for bad in corruptions:
        with pytest.raises(IsoFormatError) as info:
            decode_message(bad)
        assert TRACK2[:16] not in str(info.value)
        assert TRACK2[:16] not in repr(info.value)


def test_any_mutation_gives_a_dict_or_format_error() -> None:
    """Bad bytes never escape as another exception (spec section 6)."""
    raw = encode_message(PAYMENT)
    rng = random.Random(8583)
    for _ in range(3000):
        bad = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        cut = rng.choice([len(bad), rng.randrange(len(bad) + 1)])
        try:
            assert isinstance(decode_message(bytes(bad[:cut])), dict)
        except IsoFormatError:
            pass


def test_random_garbage_gives_format_error() -> None:
    """Random bytes (up to 64) are never a message: an MTI of 4 ASCII digits alone comes
    by chance once in ~1.8 million, so every one of these must raise, and nothing else."""
    rng = random.Random(1987)
    for _ in range(2000):
        garbage = rng.randbytes(rng.randrange(64))
        with pytest.raises(IsoFormatError):
            decode_message(garbage)


# --- MTI helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mti", "base"),
    [("0201", "0200"), ("0221", "0220"), ("0401", "0400"), ("0421", "0420"),
     ("0200", "0200"), ("0800", "0800"), ("0210", "0210"), ("0100", "0100")],
)  # fmt: skip
def test_base_mti(mti: str, base: str) -> None:
    assert base_mti(mti) == base


@pytest.mark.parametrize(
    ("mti", "response"),
    [("0100", "0110"), ("0200", "0210"), ("0201", "0210"), ("0220", "0230"),
     ("0221", "0230"), ("0400", "0410"), ("0401", "0410"), ("0420", "0430"),
     ("0421", "0430"), ("0500", "0510"), ("0800", "0810")],
)  # fmt: skip
def test_response_mti(mti: str, response: str) -> None:
    assert response_mti(mti) == response


@pytest.mark.parametrize("mti", ["0210", "0430", "0810", "200", "02000", "02A0", ""])
def test_response_mti_rejects(mti: str) -> None:
    with pytest.raises(IsoFormatError):
        response_mti(mti)


# --- MAC input --------------------------------------------------------------------


def test_mac_input_is_everything_before_the_mac() -> None:
    fields = {"t": "0200", "3": "500000", "11": "000001", "64": "0000000000000000"}
    raw = encode_message(fields)
    assert mac_input(raw) == raw[:-8]
    assert mac_input(raw).startswith(b"0200")
    without_mac = encode_message({k: v for k, v in fields.items() if k != "64"})
    assert mac_input(raw)[12:] == without_mac[12:]  # only bit 64 of the bitmap differs


def test_mac_input_rejects_short_messages() -> None:
    with pytest.raises(IsoFormatError):
        mac_input(b"0200" + bytes(8) + bytes(7))


@pytest.mark.parametrize("extra", [{}, {"70": "301"}], ids=["de64", "de128"])
def test_with_mac_gives_the_bytes_of_the_message_with_that_mac(extra: dict[str, str]) -> None:
    fields = {"t": "0210", "3": "500000", "11": "000001", "39": "00", **extra}
    de = mac_field(fields)
    raw = encode_message({**fields, de: "0" * 16})
    assert with_mac(raw, "0123456789abcdef") == encode_message({**fields, de: "0123456789ABCDEF"})


@pytest.mark.parametrize("mac", ["", "0123456789ABCDE", "0123456789ABCDEF0", "0123456789ABCDEG"])
def test_with_mac_refuses_what_is_not_8_bytes_of_hex(mac: str) -> None:
    raw = encode_message({"t": "0210", "11": "000001", "64": "0" * 16})
    with pytest.raises(IsoFormatError):
        with_mac(raw, mac)


def test_with_mac_refuses_short_messages() -> None:
    with pytest.raises(IsoFormatError):
        with_mac(b"0210" + bytes(8) + bytes(7), "0" * 16)


@pytest.mark.parametrize("value", [" ", "~", "A !#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"])
def test_encode_accepts_every_printable_ascii_character(value: str) -> None:
    assert decode_message(encode_message({"t": "0200", "48": value}))["48"] == value


@pytest.mark.parametrize(
    ("extra", "de"),
    [({}, "64"), ({"64": "0" * 16}, "64"), ({"65": "x"}, "128"), ({"127": "x"}, "128")],
)
def test_mac_field_is_128_exactly_when_a_field_needs_the_secondary_bitmap(
    extra: dict[str, str], de: str
) -> None:
    assert mac_field({"t": "0200", "11": "000001", "128": "0" * 16, **extra}) == de
