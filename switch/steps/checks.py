"""Steps every financial flow shares: who is asking, is it signed on, what bill, which biller."""

from __future__ import annotations

import string

from iso.amounts import parse_amount
from iso.bill_data import parse_bill_data
from iso.errors import IsoFormatError
from routing.routes import NoAdapter
from switch.business_day import business_day
from switch.errors import (
    FormatError,
    InvalidAmount,
    NoRoute,
    NotSupported,
    UnknownParty,
)
from switch.ledger.amount_rules import arrival_violation
from switch.services import Services
from switch.transaction import Transaction

HOST_TERMINAL = ""

# DE 48 tags every bill flow needs, with their longest value (spec: BL an..8, AC ans..32).
_ROUTING_TAGS = {"BL": 8, "AC": 32}
_ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)


async def identify(t: Transaction, sv: Services) -> None:
    """The acquirer (DE 32) and terminal (DE 41) must be known on this channel: its MAC key
    is found by them. Whether they are still active is checked after the MAC (``admitted``)."""
    acquirer_id = t.field("32")
    if t.origin.kind == "HOST":
        t.terminal_id = t.request.get("41", HOST_TERMINAL)
        terminal = sv.reference().terminal(acquirer_id, HOST_TERMINAL)
    else:
        t.terminal_id = t.field("41")
        terminal = sv.reference().terminal(acquirer_id, t.terminal_id)
    if terminal is None or terminal.channel != t.origin.kind:
        raise UnknownParty("unknown acquirer or terminal on this channel")
    t.terminal = terminal
    t.business_day = business_day(t.received_at, sv.cutover, sv.timezone)


async def admitted(t: Transaction, sv: Services) -> None:
    """The terminal and its acquirer must be active (an operator may have closed them)."""
    assert t.terminal is not None
    if not t.terminal.active:
        raise UnknownParty("terminal not active")
    if t.terminal.acquirer_id not in sv.reference().acquirers:
        raise UnknownParty("acquirer not active")


async def signed_on(t: Transaction, sv: Services) -> None:
    assert t.terminal is not None
    if not await sv.sign_ons.is_signed_on(t.terminal.acquirer_id, t.terminal.terminal_id):
        raise UnknownParty("not signed on")


def parsed_bill_data(t: Transaction) -> dict[str, str]:
    """DE 48's tags, parsed once per request (a payer-code step may have looked first)."""
    if not t.bill_data:
        try:
            t.bill_data = parse_bill_data(t.field("48"))
        except IsoFormatError as exc:
            raise FormatError("48", "bill data is not valid TLV") from exc
    return t.bill_data


def by_payer_code(t: Transaction) -> bool:
    """Whether DE 48 names a payer code instead of a biller (PC without BL; with both,
    BL and AC decide and PC is ignored)."""
    tags = parsed_bill_data(t)
    return "PC" in tags and "BL" not in tags


async def bill_data(t: Transaction, sv: Services) -> None:
    """DE 48 must name a biller and an account (a payer code's flows branch off before
    this step, switch/steps/payers.py; an advice cannot name one)."""
    if by_payer_code(t):
        raise NotSupported("payer codes are not supported in advices")
    for tag, longest in _ROUTING_TAGS.items():
        value = t.bill_data.get(tag)
        if not value:
            raise FormatError("48", f"tag {tag} missing")
        if len(value) > longest:
            raise FormatError("48", f"tag {tag} longer than {longest}")
    if not _ALPHANUMERIC.issuperset(t.bill_data["BL"]):
        raise FormatError("48", "tag BL is not alphanumeric")
    t.out_bill.update(BL=t.bill_data["BL"], AC=t.bill_data["AC"])


async def route(t: Transaction, sv: Services) -> None:
    biller = sv.reference().biller(t.bill_data["BL"])
    if biller is None or not biller.active:
        raise NoRoute("unknown biller")
    try:
        sv.router.adapter(biller.kind)
    except NoAdapter as exc:
        raise NoRoute(f"no adapter for {biller.kind} billers yet") from exc
    t.biller = biller


async def amount(t: Transaction, sv: Services) -> None:
    """Amount and currency against the biller's settings (switch/ledger/amount_rules.py,
    ``ON_ARRIVAL``); the rules against the amount due are the ledger's."""
    t.amount = amount_of(t)
    assert t.biller is not None
    why = arrival_violation(t.biller, t.amount, t.field("49"))
    if why is not None:
        raise InvalidAmount(why)


def amount_of(t: Transaction) -> int:
    """DE 4 as an integer of minor units, or a 30 naming it."""
    try:
        return parse_amount(t.field("4"))
    except IsoFormatError as exc:
        raise FormatError("4") from exc
