"""DE 48 bill data: a run of TAG(2 letters) + LEN(3 digits) + value subelements.

Parsing is strict about structure (a truncated or mis-sized subelement
makes every later tag unreadable, so the whole field is a format error) and
lenient about content: unknown tags are kept for the caller to ignore, so a
terminal sending a newer tag set still works.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping

from iso.errors import IsoFormatError

FIELD = "48"
TAG_SIZE = 2
LEN_SIZE = 3
MAX_VALUE = 999
MAX_FIELD = 999

# Tags of the host interface (section 4, "DE 48 bill data").
TAGS: dict[str, str] = {
    "BL": "biller code",
    "AC": "customer account at the biller",
    "PC": "payer code standing for all of a payer's accounts",
    "PE": "period, YYYYMM",
    "IN": "invoice number",
    "PH": "payer phone for the payment notice",
    "EM": "payer e-mail for the payment notice",
    "NM": "customer name, masked",
    "DU": "amount due, n12",
    "DL": "debts for a payer code, BL:AC:amount:period joined by ;",
    "AL": "split of a payment by payer code, BL:AC:amount joined by ;",
    "RN": "receipt number (switch payment id)",
    "VR": "fiscal/VAT receipt id",
    "TK": "prepaid token",
    "KY": "new working key under the master key, hex",
    "KC": "check value of the new working key, 6 hex",
}

_LETTERS = frozenset(string.ascii_letters)
_DIGITS = frozenset(string.digits)
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))


def _is_tag(tag: str) -> bool:
    """Two ASCII letters (str.isalpha would also accept Cyrillic)."""
    return len(tag) == TAG_SIZE and _LETTERS.issuperset(tag)


def _read_length(s: str, pos: int) -> int:
    """Read the 3-digit length at ``pos``; the caller has checked it is all present."""
    digits = s[pos : pos + LEN_SIZE]
    if not _DIGITS.issuperset(digits):
        raise IsoFormatError(f"bill data length at offset {pos} is not 3 digits", FIELD)
    return int(digits)


def parse_bill_data(s: str) -> dict[str, str]:
    """Split DE 48 into {tag: value}; a repeated tag keeps its last value."""
    items: dict[str, str] = {}
    pos = 0
    while pos < len(s):
        if len(s) - pos < TAG_SIZE + LEN_SIZE:
            raise IsoFormatError(f"bill data truncated at offset {pos}", FIELD)
        tag = s[pos : pos + TAG_SIZE]
        if not _is_tag(tag):
            raise IsoFormatError(f"bill data tag at offset {pos} is not 2 letters", FIELD)
        length = _read_length(s, pos + TAG_SIZE)
        start = pos + TAG_SIZE + LEN_SIZE
        if start + length > len(s):
            raise IsoFormatError(f"bill data value at offset {start} truncated", FIELD)
        items[tag] = s[start : start + length]
        pos = start + length
    return items


def _encode_item(tag: str, value: str) -> str:
    """One subelement; checks what the parser on the other side will check."""
    if not _is_tag(tag):
        raise IsoFormatError("bill data tag must be 2 ASCII letters", FIELD)
    if len(value) > MAX_VALUE:
        raise IsoFormatError(f"bill data {tag} longer than {MAX_VALUE}", FIELD)
    if not _PRINTABLE.issuperset(value):
        raise IsoFormatError(f"bill data {tag} is not printable ASCII", FIELD)
    return f"{tag}{len(value):03d}{value}"


def build_bill_data(items: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Join subelements in the given order (a mapping keeps insertion order)."""
    pairs = items.items() if isinstance(items, Mapping) else items
    field = "".join(_encode_item(tag, value) for tag, value in pairs)
    if len(field) > MAX_FIELD:
        raise IsoFormatError(f"bill data longer than {MAX_FIELD}", FIELD)
    return field
