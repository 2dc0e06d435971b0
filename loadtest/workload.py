"""Request builders for each message kind, and readers for the responses.

Pure functions over plain dicts (pyiso8583 keys, "t" = MTI), so the messages
the generator puts on the wire can be unit tested by an encode/decode round
trip without a network. Field choices follow host-interface.md section 4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from iso.amounts import amount_field, build_original_data
from iso.bill_data import build_bill_data, parse_bill_data
from iso.errors import IsoFormatError
from loadtest.identity import Identity
from loadtest.security import OnUsCard

BILLER = "UTIL01"
CURRENCY = "944"
PROC_INQUIRY = "310000"
PROC_PAYMENT = "500000"
POS_ENTRY_MODE = "010"  # PAN entry unspecified/manual, PIN capability unknown
CARD_ENTRY_MODE = "021"  # PAN from the magnetic stripe, PIN entry capable (on-us cards)
ATM_MERCHANT_TYPE = "6011"
SIGN_ON = "001"
ECHO_TEST = "301"
APPROVED = "00"

KINDS = ("inquiry", "payment", "reversal")

MatchKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stamp:
    """DE 7 (UTC) and DE 12/13 (terminal local time) of one request."""

    transmitted: str
    local_time: str
    local_date: str


def stamp_at(utc: datetime, local: datetime) -> Stamp:
    """Format the clock readings the way the spec wants them (MMDDhhmmss etc.)."""
    return Stamp(utc.strftime("%m%d%H%M%S"), local.strftime("%H%M%S"), local.strftime("%m%d"))


def stamp_now() -> Stamp:
    """Stamp for a request sent now: DE 7 must move with the clock, as on a real terminal."""
    utc = datetime.now(UTC)
    return stamp_at(utc, utc.astimezone())


@dataclass(frozen=True, slots=True)
class Header:
    """What identifies one request on the wire: who, STAN, when, RRN."""

    identity: Identity
    stan: str
    stamp: Stamp
    rrn: str


@dataclass(frozen=True, slots=True)
class Original:
    """An approved payment, remembered so it can be reversed later."""

    header: Header
    account: str
    amount: int
    payment_id: int | None


def _identity_fields(identity: Identity) -> dict[str, str]:
    """DE 32 always; DE 41 for terminals; DE 42 where the terminal has a merchant."""
    fields = {"32": identity.acquirer}
    if identity.terminal:
        fields["41"] = identity.terminal
    if identity.merchant:
        fields["42"] = identity.merchant
    return fields


def network(identity: Identity, stan: str, stamp: Stamp, code: str = SIGN_ON) -> dict[str, str]:
    """0800 network management: sign-on (001) or echo test (301)."""
    fields = {"t": "0800", "7": stamp.transmitted, "11": stan, "70": code}
    return fields | _identity_fields(identity)


def _financial(mti: str, header: Header, processing_code: str) -> dict[str, str]:
    """Fields every 01xx-04xx request of ours carries."""
    fields = {
        "t": mti,
        "3": processing_code,
        "7": header.stamp.transmitted,
        "11": header.stan,
        "12": header.stamp.local_time,
        "13": header.stamp.local_date,
        "37": header.rrn,
    }
    if header.identity.channel == "atm":
        fields["18"] = ATM_MERCHANT_TYPE
    return fields | _identity_fields(header.identity)


def bill_data(account: str, biller: str = BILLER) -> str:
    """DE 48 naming the bill: biller code and customer account."""
    return build_bill_data({"BL": biller, "AC": account})


def inquiry(header: Header, account: str, biller: str = BILLER) -> dict[str, str]:
    """0200 bill inquiry (processing code 31): asks what the account owes."""
    fields = _financial("0200", header, PROC_INQUIRY)
    return fields | {"22": POS_ENTRY_MODE, "48": bill_data(account, biller)}


def payment(
    header: Header,
    account: str,
    amount: int,
    biller: str = BILLER,
    currency: str = CURRENCY,
    card: OnUsCard | None = None,
) -> dict[str, str]:
    """0200 bill payment (processing code 50) of ``amount`` minor units.

    With an on-us ``card`` it also carries DE 2, 52 and 53: the switch checks
    the PIN through its HSM and pays from the card's wallet.
    """
    fields = _financial("0200", header, PROC_PAYMENT)
    fields |= {
        "4": amount_field(amount),
        "22": POS_ENTRY_MODE,
        "48": bill_data(account, biller),
        "49": currency,
    }
    if card is not None:
        fields |= card.fields() | {"22": CARD_ENTRY_MODE}
    return fields


def reversal(
    header: Header, original: Original, currency: str = CURRENCY, biller: str = BILLER
) -> dict[str, str]:
    """0400 reversal of an approved 0200: new STAN, DE 90 points at the original.

    DE 37 repeats the original's RRN, as acquirers usually do for reversals.
    """
    first = original.header
    fields = _financial("0400", header, PROC_PAYMENT)
    return fields | {
        "4": amount_field(original.amount),
        "37": first.rrn,
        "48": bill_data(original.account, biller),
        "49": currency,
        "90": build_original_data(
            "0200", first.stan, first.stamp.transmitted, first.identity.acquirer
        ),
    }


def match_key(fields: dict[str, str]) -> MatchKey:
    """Pair a response with its request: DE 41 + 11 for terminals, 11 + 7 + 32 for hosts."""
    terminal = fields.get("41")
    if terminal:
        return ("T", terminal, fields.get("11", ""))
    return ("H", fields.get("11", ""), fields.get("7", ""), fields.get("32", ""))


def response_code(fields: dict[str, str]) -> str:
    """DE 39, or '--' when the response has none (itself a contract breach)."""
    return fields.get("39", "--")


def _bill_items(fields: dict[str, str]) -> dict[str, str]:
    """DE 48 of a response as tags; an unreadable DE 48 counts as empty."""
    try:
        return parse_bill_data(fields.get("48", ""))
    except IsoFormatError:
        return {}


def amount_due(fields: dict[str, str]) -> int | None:
    """DU of an inquiry response, or None if absent or not a number."""
    value = _bill_items(fields).get("DU", "")
    return int(value) if value.isascii() and value.isdigit() else None


_TRAILING_DIGITS = re.compile(r"([0-9]+)$")


def receipt_number(fields: dict[str, str]) -> int | None:
    """Payment id from RN: the digits at its end (the switch may prefix it)."""
    match = _TRAILING_DIGITS.search(_bill_items(fields).get("RN", ""))
    return int(match.group(1)) if match else None
