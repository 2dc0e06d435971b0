"""DE 48 bill data TLV."""

import pytest

from iso.bill_data import TAGS, build_bill_data, parse_bill_data
from iso.errors import IsoFormatError


def test_parse() -> None:
    assert parse_bill_data("BL005WATERAC0101234567890PE006202403") == {
        "BL": "WATER",
        "AC": "1234567890",
        "PE": "202403",
    }


def test_parse_empty_field_and_empty_value() -> None:
    assert parse_bill_data("") == {}
    assert parse_bill_data("IN000") == {"IN": ""}


def test_unknown_tags_are_kept() -> None:
    assert parse_bill_data("ZZ002hiBL001X") == {"ZZ": "hi", "BL": "X"}


def test_duplicate_tag_last_wins() -> None:
    assert parse_bill_data("BL001ABL001B") == {"BL": "B"}


def test_values_may_contain_tag_like_text() -> None:
    assert parse_bill_data("DL021WATER:123:5000:202403") == {"DL": "WATER:123:5000:202403"}
    assert parse_bill_data("AC008BL003ABC") == {"AC": "BL003ABC"}


@pytest.mark.parametrize(
    "s",
    [
        "B",  # truncated tag
        "BL",  # no length
        "BL00",  # short length
        "BL005WAT",  # truncated value
        "BL001XAC",  # second element truncated
        "BLx01X",  # bad length digits
        "BL-01X",
        "BL 01X",
        "BL٠٠١X",  # non-ASCII digits
        "B1001X",  # tag not letters
        "12001X",
        "ЖЖ001X",  # non-ASCII letters
    ],
)
def test_parse_rejects_malformed(s: str) -> None:
    with pytest.raises(IsoFormatError) as info:
        parse_bill_data(s)
    assert info.value.field == "48"


def test_error_does_not_show_values() -> None:
    with pytest.raises(IsoFormatError) as info:
        parse_bill_data("AC0201234567890")
    assert "1234567890" not in str(info.value)


def test_build_keeps_order() -> None:
    assert build_bill_data([("RN", "42"), ("NM", "GIL*** P.")]) == "RN00242NM009GIL*** P."
    assert build_bill_data({"NM": "X", "RN": "1"}) == "NM001XRN0011"


def test_build_parse_round_trip() -> None:
    items = {"BL": "GAS", "AC": "A-1/2", "DU": "000000012345", "IN": ""}
    assert parse_bill_data(build_bill_data(items)) == items


def test_build_value_of_999() -> None:
    value = "x" * 994
    assert parse_bill_data(build_bill_data({"TK": value})) == {"TK": value}


@pytest.mark.parametrize(
    "items",
    [
        {"TK": "x" * 1000},  # value too long
        {"TK": "x" * 995},  # field too long for DE 48
        {"B": "x"},
        {"BLL": "x"},
        {"B1": "x"},
        {"NM": "Гильман"},  # not transliterated
        {"NM": "a\tb"},
    ],
)
def test_build_rejects(items: dict[str, str]) -> None:
    with pytest.raises(IsoFormatError) as info:
        build_bill_data(items)
    assert info.value.field == "48"


def test_tag_table() -> None:
    expected = "BL AC PC PE IN PH EM NM DU DL AL RN VR TK KY KC".split()
    assert list(TAGS) == expected
    assert all(TAGS.values())
