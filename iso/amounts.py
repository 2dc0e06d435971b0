"""Composed fields: amounts and original data (DE 4, 28, 54, 90, 95, 97).

Sign convention (ISO 8583 "x+n"): ``D`` (debit) for amounts >= 0, ``C``
(credit) for negative ones, written with their absolute value.

- DE 54 amount due: what the payer owes is a debit to the payer -> ``D``.
- DE 28 fee: a fee charged to the payer is a debit -> ``D``; a rebate ``C``.
- DE 97 net settlement: >= 0 means the acquirer owes the network -> ``D``;
  negative means the network owes the acquirer -> ``C``.

``parse_signed`` inverts this: ``D`` gives a positive, ``C`` a negative int.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from iso.errors import IsoFormatError

_DIGITS = frozenset(string.digits)
_SIGNS = {"D": 1, "C": -1}


def _is_digits(s: str, size: int | None = None) -> bool:
    """ASCII digits only (str.isdigit also accepts e.g. Arabic-Indic digits)."""
    return bool(s) and _DIGITS.issuperset(s) and (size is None or len(s) == size)


def _digits(value: int, size: int, field: str) -> str:
    """Zero-padded ``value``; refuse what would not fit rather than truncate money."""
    if not 0 <= value < 10**size:
        raise IsoFormatError(f"amount does not fit {size} digits", field)
    return str(value).zfill(size)


def _signed(amount: int, size: int, field: str) -> str:
    """``D``/``C`` + ``size`` digits, sign per the module convention."""
    sign = "D" if amount >= 0 else "C"
    return sign + _digits(abs(amount), size, field)


def amount_field(amount: int) -> str:
    """DE 4 (n12): amount in minor units, zero padded."""
    return _digits(amount, 12, "4")


def parse_amount(s: str, field: str = "4") -> int:
    """Inverse of ``amount_field`` for any n12 amount field (DE 4, DU, ...)."""
    if not _is_digits(s, 12):
        raise IsoFormatError("amount must be 12 digits", field)
    return int(s)


def additional_amount(
    amount: int, currency: str, amount_type: str = "40", account_type: str = "00"
) -> str:
    """One 20-character DE 54 entry; default amount type 40 = amount due."""
    for part, size in ((currency, 3), (amount_type, 2), (account_type, 2)):
        if not _is_digits(part, size):
            raise IsoFormatError("additional amount code has wrong digits", "54")
    return account_type + amount_type + currency + _signed(amount, 12, "54")


def fee_amount(amount: int) -> str:
    """DE 28 (x+n8): ``D`` when the payer is charged, ``C`` for a rebate."""
    return _signed(amount, 8, "28")


def net_settlement(amount: int) -> str:
    """DE 97 (x+n16): ``D`` when the acquirer owes the network (amount >= 0)."""
    return _signed(amount, 16, "97")


def parse_signed(s: str, field: str | None = None) -> int:
    """Read a ``C``/``D`` + digits value (DE 28, 97, DE 54 tail): D -> +, C -> -."""
    if len(s) < 2 or s[0] not in _SIGNS or not _is_digits(s[1:]):
        raise IsoFormatError("signed amount must be C or D followed by digits", field)
    return _SIGNS[s[0]] * int(s[1:])


@dataclass(frozen=True)
class OriginalData:
    """DE 90 of a reversal: identifies the 0200 being reversed."""

    mti: str
    stan: str
    transmitted: str
    acquirer: str
    forwarder: str


# DE 90 layout: (attribute, width), in wire order.
_DE90: tuple[tuple[str, int], ...] = (
    ("mti", 4),
    ("stan", 6),
    ("transmitted", 10),
    ("acquirer", 11),
    ("forwarder", 11),
)
_DE90_SIZE = sum(width for _, width in _DE90)


def parse_original_data(de90: str) -> OriginalData:
    """Split DE 90. The acquirer id loses its zero padding so it compares equal
    to the DE 32 of the original ("0" if it is all zeros); the forwarder is
    kept as sent (always zeros in this network)."""
    if not _is_digits(de90, _DE90_SIZE):
        raise IsoFormatError(f"original data must be {_DE90_SIZE} digits", "90")
    parts: dict[str, str] = {}
    pos = 0
    for name, width in _DE90:
        parts[name] = de90[pos : pos + width]
        pos += width
    parts["acquirer"] = parts["acquirer"].lstrip("0") or "0"
    return OriginalData(**parts)


def build_original_data(mti: str, stan: str, transmitted: str, acquirer: str) -> str:
    """DE 90 for a reversal; the acquirer id (DE 32, n..11) is zero padded left."""
    values = {"mti": mti, "stan": stan, "transmitted": transmitted}
    for name, width in _DE90[:3]:
        if not _is_digits(values[name], width):
            raise IsoFormatError(f"original {name} must be {width} digits", "90")
    if not _is_digits(acquirer) or len(acquirer) > 11:
        raise IsoFormatError("original acquirer must be 1-11 digits", "90")
    return mti + stan + transmitted + acquirer.zfill(11) + "0" * 11


def parse_replacement_amount(de95: str) -> int:
    """DE 95: the first 12 digits are the amount actually dispensed/kept."""
    if len(de95) != 42 or not _is_digits(de95[:12]):
        raise IsoFormatError("replacement amount must start with 12 digits", "95")
    return int(de95[:12])
