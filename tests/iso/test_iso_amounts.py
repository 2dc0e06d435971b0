"""Composed amount and original-data fields."""

import pytest

from iso.amounts import (
    OriginalData,
    additional_amount,
    amount_field,
    build_original_data,
    fee_amount,
    net_settlement,
    parse_amount,
    parse_original_data,
    parse_replacement_amount,
    parse_signed,
)
from iso.errors import IsoFormatError


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((12345, "944"), "0040944D000000012345"),
        ((0, "944"), "0040944D000000000000"),
        ((-500, "840", "02", "10"), "1002840C000000000500"),
        ((999_999_999_999, "944"), "0040944D999999999999"),
    ],
)
def test_additional_amount(args: tuple, expected: str) -> None:
    assert additional_amount(*args) == expected
    assert len(expected) == 20
    assert parse_signed(expected[7:]) == args[0]


@pytest.mark.parametrize(
    "args",
    [(10**12, "944"), (-(10**12), "944"), (1, "94"), (1, "AZN"), (1, "944", "4"),
     (1, "944", "40", "0x")],
)  # fmt: skip
def test_additional_amount_rejects(args: tuple) -> None:
    with pytest.raises(IsoFormatError) as info:
        additional_amount(*args)
    assert info.value.field == "54"


@pytest.mark.parametrize(
    ("amount", "expected"), [(150, "D00000150"), (0, "D00000000"), (-150, "C00000150")]
)
def test_fee_amount(amount: int, expected: str) -> None:
    assert fee_amount(amount) == expected
    assert parse_signed(expected) == amount


def test_fee_amount_overflow() -> None:
    with pytest.raises(IsoFormatError) as info:
        fee_amount(10**8)
    assert info.value.field == "28"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(129000, "D0000000000129000"), (0, "D0000000000000000"), (-7, "C0000000000000007")],
)
def test_net_settlement(amount: int, expected: str) -> None:
    assert net_settlement(amount) == expected
    assert parse_signed(expected) == amount


def test_net_settlement_overflow() -> None:
    with pytest.raises(IsoFormatError) as info:
        net_settlement(-(10**16))
    assert info.value.field == "97"


@pytest.mark.parametrize(
    "s", ["", "D", "X00000001", "d00000001", "D0000000A", "D-0000001", "D٠٠٠", "00000001", " D1"]
)
def test_parse_signed_rejects(s: str) -> None:
    with pytest.raises(IsoFormatError):
        parse_signed(s)


def test_parse_signed_reports_the_field_given() -> None:
    with pytest.raises(IsoFormatError) as info:
        parse_signed("?", field="97")
    assert info.value.field == "97"


def test_amount_field() -> None:
    assert amount_field(12345) == "000000012345"
    assert parse_amount("000000012345") == 12345
    assert parse_amount(amount_field(0)) == 0


@pytest.mark.parametrize("amount", [-1, 10**12])
def test_amount_field_rejects(amount: int) -> None:
    with pytest.raises(IsoFormatError) as info:
        amount_field(amount)
    assert info.value.field == "4"


@pytest.mark.parametrize("s", ["", "12345", "0000000123456", "00000001234A", "-00000001234"])
def test_parse_amount_rejects(s: str) -> None:
    with pytest.raises(IsoFormatError) as info:
        parse_amount(s, field="DU")
    assert info.value.field == "DU"


DE90 = "".join(["0200", "000123", "0301104512", "00012345678", "00000000000"])


def test_parse_original_data() -> None:
    assert parse_original_data(DE90) == OriginalData(
        mti="0200",
        stan="000123",
        transmitted="0301104512",
        acquirer="12345678",
        forwarder="00000000000",
    )


def test_original_acquirer_all_zeros() -> None:
    assert parse_original_data(DE90[:20] + "0" * 22).acquirer == "0"


@pytest.mark.parametrize("de90", ["", DE90[:-1], DE90 + "0", DE90[:-1] + "A", " " + DE90[1:]])
def test_parse_original_data_rejects(de90: str) -> None:
    with pytest.raises(IsoFormatError) as info:
        parse_original_data(de90)
    assert info.value.field == "90"


def test_build_original_data() -> None:
    assert build_original_data("0200", "000123", "0301104512", "12345678") == DE90
    original = parse_original_data(build_original_data("0200", "000001", "0101000000", "1"))
    assert original.acquirer == "1"


@pytest.mark.parametrize(
    "args",
    [("200", "000123", "0301104512", "1"), ("0200", "123", "0301104512", "1"),
     ("0200", "000123", "03011045", "1"), ("0200", "000123", "0301104512", ""),
     ("0200", "000123", "0301104512", "123456789012"), ("0200", "000123", "0301104512", "AB")],
)  # fmt: skip
def test_build_original_data_rejects(args: tuple[str, str, str, str]) -> None:
    with pytest.raises(IsoFormatError) as info:
        build_original_data(*args)
    assert info.value.field == "90"


def test_parse_replacement_amount() -> None:
    assert parse_replacement_amount("000000005000" + "0" * 12 + "D00000000C00000000") == 5000


@pytest.mark.parametrize("de95", ["", "000000005000", "00000000500A" + "0" * 30, "0" * 43])
def test_parse_replacement_amount_rejects(de95: str) -> None:
    with pytest.raises(IsoFormatError) as info:
        parse_replacement_amount(de95)
    assert info.value.field == "95"
