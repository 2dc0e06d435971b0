"""IsoFormatError: one exception type for every wire problem, never leaking values."""

import pytest

from iso.errors import FrameTooLarge, IsoFormatError


def test_is_a_value_error_with_field() -> None:
    err = IsoFormatError("must be 12 digits", "4")
    assert isinstance(err, ValueError)
    assert err.field == "4"
    assert str(err) == "DE 4: must be 12 digits"


@pytest.mark.parametrize(
    ("field", "prefix"),
    [(None, "message"), ("t", "MTI"), ("p", "primary bitmap"), ("1", "secondary bitmap")],
)
def test_message_names_the_part(field: str | None, prefix: str) -> None:
    assert str(IsoFormatError("bad", field)).startswith(prefix + ":")


def test_frame_too_large_is_a_format_error() -> None:
    err = FrameTooLarge("too big")
    assert isinstance(err, IsoFormatError)
    assert err.field is None
