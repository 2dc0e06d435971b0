"""The ISO 8583:1987 dialect of the host interface (spec sections 2 and 4).

pyiso8583 does the byte-level work; this module pins the field layout to the
contract, turns every library failure into ``IsoFormatError`` and adds the
character checks pyiso8583 does not make (it accepts letters in numeric
fields and control bytes in text fields).
"""

from __future__ import annotations

import copy
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import iso8583
import iso8583.specs

from iso.errors import IsoFormatError

# Layout overrides where host-interface.md differs from pyiso8583's default
# spec. Every DE of the spec table was compared; only DE 54 differs
# (6 entries of 20 characters instead of the default 240).
_OVERRIDES: dict[str, dict[str, Any]] = {
    "h": {"max_len": 0},
    "54": {"max_len": 120},
}


def _build_spec() -> dict[str, dict[str, Any]]:
    """Copy the default spec so the overrides never leak into pyiso8583's own dict."""
    spec = copy.deepcopy(iso8583.specs.default)
    for key, override in _OVERRIDES.items():
        spec[key].update(override)
    return spec


SPEC: dict[str, dict[str, Any]] = _build_spec()

# Format column of the spec's DE table. Only "n" is checked strictly; "b" is
# raw bytes; every other format must be printable ASCII (section 2).
# fmt: off
FORMATS: dict[str, str] = {
    "2": "n", "3": "n", "4": "n", "7": "n", "11": "n", "12": "n", "13": "n",
    "14": "n", "18": "n", "22": "n", "28": "x+n", "32": "n", "35": "z",
    "37": "an", "38": "an", "39": "an", "41": "ans", "42": "ans", "43": "ans",
    "48": "ans", "49": "n", "52": "b", "53": "n", "54": "ans", "64": "b",
    "70": "n", "74": "n", "75": "n", "76": "n", "77": "n", "86": "n",
    "87": "n", "88": "n", "89": "n", "90": "n", "95": "an", "96": "b",
    "97": "x+n", "102": "ans", "128": "b",
}
# fmt: on

_DIGITS = frozenset(string.digits)
_HEX = frozenset(string.hexdigits)
# Fields of format n hold digits; every other non-binary field printable ASCII.
_NUMERIC = frozenset(key for key, fmt in FORMATS.items() if fmt == "n")

# Bitmap keys: pyiso8583 computes them from the fields present.
_COMPUTED = frozenset({"p", "1"})
_BINARY = frozenset(key for key, spec in SPEC.items() if spec["data_enc"] == "b")
_UNCHECKED = _BINARY | _COMPUTED | {"t"}  # binary, computed, or checked on their own
# DE 65 would announce a tertiary bitmap (fields 129-192) that 1987 lacks.
_ENCODABLE = frozenset(SPEC) - {"h", "65"} - _COMPUTED

# A repeat is processed as the original message (spec section 3).
_REPEATS: dict[str, str] = {"0201": "0200", "0221": "0220", "0401": "0400", "0421": "0420"}


def _check_mti(mti: str) -> None:
    """The MTI is four ASCII digits; pyiso8583 would accept any four characters."""
    if len(mti) != 4 or not _DIGITS.issuperset(mti):
        raise IsoFormatError("MTI must be 4 digits", "t")


def _check_chars(fields: Mapping[str, str]) -> None:
    """Reject values whose characters do not fit the field format (values are not echoed).

    Every message is checked both ways, so the test is str methods, exact on
    ASCII: digits are 0-9 only, printable is 0x20-0x7E.
    """
    for key, value in fields.items():
        if key in _UNCHECKED:
            continue
        if key in _NUMERIC:
            fits = value.isascii() and (value.isdigit() or not value)
        else:
            fits = value.isascii() and value.isprintable()
        if not fits:
            raise IsoFormatError(f"characters outside format {FORMATS.get(key, 'ans')}", key)


# Offsets of the first byte of the primary and secondary bitmaps (no header).
_PRIMARY_AT = 4
_SECONDARY_AT = _PRIMARY_AT + 8


def _has_tertiary_bitmap(raw: bytes) -> bool:
    """Bits 1 and 65 set: pyiso8583 would read a third bitmap (fields 129-192)
    that ISO 8583:1987 does not have, and fail with a KeyError on its fields."""
    if len(raw) <= _SECONDARY_AT:
        return False
    return bool(raw[_PRIMARY_AT] & 0x80 and raw[_SECONDARY_AT] & 0x80)


def decode_message(raw: bytes) -> dict[str, str]:
    """Decode one message (MTI onwards, without length prefix or TPDU).

    Returns pyiso8583's decoded dict: "t", "p", "1" (if present) and the DE
    numbers as strings; binary fields are uppercase hex. Any problem raises
    ``IsoFormatError`` so one bad frame can be answered with code 30.
    """
    raw = bytes(raw)
    if _has_tertiary_bitmap(raw):
        raise IsoFormatError("tertiary bitmap not supported", "65")
    try:
        decoded, _ = iso8583.decode(raw, SPEC)
    except iso8583.DecodeError as exc:
        raise IsoFormatError(exc.msg, exc.field) from None
    except Exception:  # bad bytes must never escape as another exception type
        raise IsoFormatError("undecodable message") from None
    _check_mti(decoded["t"])
    _check_chars(decoded)
    return decoded


def _check_keys(fields: Mapping[str, str]) -> None:
    """Reject keys pyiso8583 would silently ignore or trip over."""
    if "t" not in fields:
        raise IsoFormatError("missing", "t")
    for key, value in fields.items():
        if key not in _ENCODABLE and key not in _COMPUTED:
            raise IsoFormatError("not a field of this dialect", str(key))
        if not isinstance(value, str):
            raise IsoFormatError("value must be str", key)


def encode_message(fields: Mapping[str, str]) -> bytes:
    """Encode a message; bitmaps are computed from the keys present.

    Binary fields (52, 64, 96, 128) are given as hex strings, as pyiso8583
    returns them. Supplied "p"/"1" are ignored. The caller's mapping is never
    modified (pyiso8583 edits the dict it gets, so it gets a copy).
    """
    _check_keys(fields)
    _check_mti(fields["t"])
    _check_chars(fields)
    doc = {key: value for key, value in fields.items() if key not in _COMPUTED}
    try:
        raw, _ = iso8583.encode(doc, SPEC)
    except iso8583.EncodeError as exc:
        raise IsoFormatError(exc.msg, exc.field) from None
    return bytes(raw)


def base_mti(mti: str) -> str:
    """Map a repeat (0201, 0221, 0401, 0421) to the MTI it repeats; others unchanged."""
    return _REPEATS.get(mti, mti)


def response_mti(mti: str) -> str:
    """Response MTI for a request or advice: 0200/0201 -> 0210, 0421 -> 0430.

    The third digit (message function) goes up by one after repeat
    normalisation. An MTI that is already a response (odd third digit) or not
    four digits raises ``IsoFormatError``: answering it would loop.
    """
    _check_mti(mti)
    base = base_mti(mti)
    if int(base[2]) % 2:
        raise IsoFormatError("a response has no response MTI", "t")
    return f"{base[:2]}{int(base[2]) + 1}{base[3]}"


# MTI (4) + primary bitmap (8) + MAC (8): the least a MACed message can hold.
_MAC_BYTES = 8  # DE 64 and DE 128: fixed length, binary
_SECONDARY_FIELDS = frozenset(str(n) for n in range(65, 128))  # need the secondary bitmap
_MIN_MACED = 4 + 8 + _MAC_BYTES


@dataclass(frozen=True, slots=True)
class Encoded:
    """A message's fields and the bytes they encode to, for whoever made them already.

    A MACed answer is encoded once to compute its MAC; carrying those bytes on
    spares the channel encoding it again.
    """

    fields: dict[str, str]
    raw: bytes


def mac_field(fields: Mapping[str, str]) -> str:
    """Where a message's MAC goes: DE 128 when it has a secondary bitmap (any field
    65-127), else DE 64, so the MAC is always the last field."""
    return "64" if _SECONDARY_FIELDS.isdisjoint(fields) else "128"


def mac_input(raw: bytes) -> bytes:
    """Bytes the MAC (DE 64 or 128) is computed over: all of ``raw`` but its last 8.

    ``raw`` is an encoded message without length prefix or TPDU whose last
    field is the MAC; the MAC covers the MTI, bitmaps and every field before
    it (spec section 4). The caller checks that bit 64 or 128 is set.
    """
    if len(raw) < _MIN_MACED:
        raise IsoFormatError("too short to carry a MAC")
    return bytes(raw[:-_MAC_BYTES])


def with_mac(raw: bytes, mac: str) -> bytes:
    """``raw`` (encoded with a placeholder MAC as its last field) with ``mac`` in its place.

    DE 64/128 are 8 fixed binary bytes at the very end (``mac_field``), so the
    result is byte for byte what ``encode_message`` gives with the MAC in the fields.
    """
    if len(raw) < _MIN_MACED:
        raise IsoFormatError("too short to carry a MAC")
    if len(mac) != 2 * _MAC_BYTES or not _HEX.issuperset(mac):
        raise IsoFormatError(f"MAC must be {2 * _MAC_BYTES} hex digits")
    return raw[:-_MAC_BYTES] + bytes.fromhex(mac)
