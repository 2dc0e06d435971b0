"""The transaction: a plain value that moves through the pipeline's steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from iso.dialect import base_mti, response_mti
from switch.errors import FormatError
from switch.ledger.fees import NO_FEE, Fee
from switch.ledger.reference import Biller, Terminal

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the channel (data, not code) and the peer."""

    channel: str
    kind: str  # ATM, POS or HOST
    peer: str = ""
    mac: str = "none"  # the channel's MAC algorithm: none, x919 or cmac


# Data elements a response echoes from its request, by base MTI. DE 2 is not
# echoed: responses are stored for retransmissions, and a full PAN never is.
_FINANCIAL = ("3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49")
ECHO: dict[str, tuple[str, ...]] = {
    "0800": ("7", "11", "32", "41", "53", "70"),
    "0100": _FINANCIAL,
    "0200": _FINANCIAL,
    "0220": _FINANCIAL,
    "0400": _FINANCIAL + ("90", "95"),
    "0420": _FINANCIAL + ("90", "95"),
    "0500": ("7", "11", "15", "32", "41", "74", "75", "76", "77", "86", "87", "88", "89", "97"),
}


@dataclass
class Transaction:
    request: dict[str, str]
    origin: Origin
    received_at: datetime
    raw: bytes = b""  # the request as received (MTI onwards), for its MAC
    mac_key: Any = None  # the key that verified the request's MAC
    replayable: bool = False  # a money message past its MAC check: it may have a stored answer
    looked_up: bool = False  # its stored answer was looked up already
    wallet: str | None = None  # the on-us wallet account paying, once its PIN verified
    pan_hash: str | None = None  # DE 2's keyed hash, once a step needed it
    pin_released: Deferred[None] | None = None  # a right PIN's try being released
    mti: str = ""
    processing: str = ""  # first two digits of DE 3
    terminal: Terminal | None = None
    terminal_id: str = ""  # DE 41 as sent ('' for host links without one)
    bill_data: dict[str, str] = field(default_factory=dict)
    biller: Biller | None = None
    amount: int = 0
    fee: Fee = NO_FEE  # a payment's fee and who pays it (switch/steps/fees.py)
    business_day: date | None = None
    out: dict[str, str] = field(default_factory=dict)  # response fields beyond the echo
    out_bill: dict[str, str] = field(default_factory=dict)  # response DE 48 tags

    def __post_init__(self) -> None:
        self.mti = base_mti(self.request.get("t", ""))

    def field(self, de: str) -> str:
        """A mandatory request field, or a 30 naming it."""
        value = self.request.get(de)
        if not value:
            raise FormatError(de)
        return value

    def response(self, code: str, out: dict[str, str] | None = None) -> dict[str, str]:
        """The response fields: echo, then ``out`` (default: what the steps added), then DE 39."""
        fields = {"t": response_mti(self.request["t"])}
        for de in ECHO.get(self.mti, ("7", "11", "32", "41")):
            if de in self.request:
                fields[de] = self.request[de]
        fields.update(self.out if out is None else out)
        fields["39"] = code
        return fields
