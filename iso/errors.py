"""Errors raised by the wire layer.

Every problem with bytes that came off the wire (or with data we are about to
put on it) surfaces as ``IsoFormatError``, so the channel code needs a single
``except`` to answer with response code 30 or to close the connection.
"""

from __future__ import annotations

# Keys pyiso8583 uses for the parts of a message that are not data elements.
_PART_NAMES = {"h": "header", "t": "MTI", "p": "primary bitmap", "1": "secondary bitmap"}


def _describe(field: str | None) -> str:
    """Name a field for humans; never its value, which may be a PAN or track data."""
    if field is None:
        return "message"
    return _PART_NAMES.get(field, f"DE {field}")


class IsoFormatError(ValueError):
    """A message, frame or composed field does not follow the host interface.

    ``field`` is the data element number as a string ("48"), the pyiso8583 key
    of a message part ("t", "p", "1"), or None when the fault is not tied to
    one field. The message names the field only: field values must never
    reach logs (DE 2, 35 and 52 are sensitive).
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{_describe(field)}: {reason}")


class FrameTooLarge(IsoFormatError):
    """A frame declares a length above the channel limit (8192 by default).

    Kept distinct so the channel can count oversize frames separately: they
    usually mean a peer speaking another protocol or a length-prefix mismatch.
    """
