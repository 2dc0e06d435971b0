"""ISO 4217 currencies the network's billers use: numeric code -> letters and minor unit.

Amounts travel and are stored in minor units (DE 4, the ledger); people read
them in major units with the currency's letters. A currency not in the table
is shown with its numeric code and two decimals, the ISO 4217 default.
"""

from __future__ import annotations

# numeric: (alphabetic code, digits after the decimal point), from ISO 4217.
CURRENCIES: dict[str, tuple[str, int]] = {
    "944": ("AZN", 2),
    "496": ("MNT", 2),
    "643": ("RUB", 2),
    "398": ("KZT", 2),
    "860": ("UZS", 2),
    "417": ("KGS", 2),
    "972": ("TJS", 2),
    "934": ("TMT", 2),
    "981": ("GEL", 2),
    "051": ("AMD", 2),
    "933": ("BYN", 2),
    "980": ("UAH", 2),
    "949": ("TRY", 2),
    "840": ("USD", 2),
    "978": ("EUR", 2),
    "826": ("GBP", 2),
    "392": ("JPY", 0),
    "410": ("KRW", 0),
    "048": ("BHD", 3),
    "414": ("KWD", 3),
}


def major_units(amount: int, currency: str) -> str:
    """``amount`` minor units as ``-1234.56 AZN`` (exact: no floating point)."""
    letters, exponent = CURRENCIES.get(currency, (currency, 2))
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**exponent)
    digits = f"{whole}.{minor:0{exponent}d}" if exponent else str(whole)
    return f"{sign}{digits} {letters}"
