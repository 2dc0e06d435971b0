"""On-us cards: the network's own wallet cards, whose PINs the switch verifies.

A payment with a card of the issuer's BIN ranges carries a PIN block (DE 52)
under the terminal's TPK; the HSM checks it against the card's PVV (Visa PVV
with the issuer's PVK), so the switch never sees the PIN. Every try is reserved
in the card's ``pin_tries`` row before the HSM sees it (switch/security/tries.py: wrong tries
and those in flight on every node counted at once; none left is 75), so
requests in flight cannot outrun the limit. A wrong PIN is counted (55, or 75
for the one that reaches the limit); an undecided one (a block the HSM cannot
read, an HSM failure) is given back; a right one is released (the count reset)
and paid from the card's wallet account in the ledger.
A card of those BINs the issuer does not have is 14; a TPK/ZPK or PVK the
switch lacks is its own malfunction (96, logged for the operator), not the
terminal's security violation.
"""

from __future__ import annotations

import time

import structlog
from sqlalchemy import Connection, select
from twisted.python.failure import Failure

from hsm_sim.interface import HsmError, PinBlock
from switch.errors import (
    Decline,
    FormatError,
    IncorrectPin,
    MissingKey,
    PinTriesExceeded,
)
from switch.ledger import schema as s
from switch.security.cache import Card
from switch.security.keystore import ISSUER, owner_of
from switch.services import Services
from switch.transaction import Transaction

PIN_KEY = {"ATM": "TPK", "POS": "TPK", "HOST": "ZPK"}
DEFAULT_PIN_FORMAT = "01"  # ISO 9564 format 0

log = structlog.get_logger(__name__)


class UnusablePinFormat(FormatError):
    """DE 53 names a PIN block format the terminal's key cannot carry."""

    def __init__(self, reason: str) -> None:
        super().__init__("53", reason)


# HSM errors about the request's own PIN data: payShield error code -> the decline it
# answers, and why. A block that does not decrypt to a PIN (a terminal out of key
# sync, a corrupted field) is 55 but no counted try: it says nothing about the
# cardholder's guess. ISO 4 needs an AES TPK, which a variant LMK cannot hold. Any
# other HSM error stays the switch's own failure (96).
PIN_DATA_ERRORS: dict[str, tuple[type[Decline], str]] = {
    "20": (IncorrectPin, "PIN block not valid"),
    "24": (IncorrectPin, "PIN length out of range"),
    "23": (UnusablePinFormat, "PIN block format unknown"),
    "69": (UnusablePinFormat, "PIN block format disabled (ISO 1, or ISO 4 without AES)"),
}


class UnknownCard(Decline):
    """An on-us card (by its BIN) the issuer does not have."""

    code = "14"


class InactiveCard(Decline):
    """An on-us card the issuer has closed or not yet activated: do not honour."""

    code = "05"


_card = s.cards.c


def load_card(conn: Connection, pan_hash: str) -> Card | None:
    row = conn.execute(select(s.cards).where(_card.pan_hash == pan_hash)).first()
    if row is None:
        return None
    return Card(
        row.pan_hash,
        row.pvki,
        row.pvv,
        row.wallet_account,
        row.currency,
        row.status == "active",
    )


def is_on_us(pan: str, bins: tuple[str, ...]) -> bool:
    return pan.startswith(bins)


async def verify_on_us_pin(t: Transaction, sv: Services) -> None:
    """For on-us cards: the PIN must verify before money moves; sets ``t.wallet``."""
    pan = t.request.get("2", "")
    if not pan or not is_on_us(pan, sv.issuer_bins):
        return
    pan_hash = t.pan_hash = sv.hasher.pan(pan)
    card = sv.cards.get(pan_hash)
    if card is None:
        card = await sv.reads.shared(load_card, pan_hash)
        if card is not None:
            sv.cards.put(card)
    if card is None:
        raise UnknownCard("on-us card unknown to the issuer")
    if not card.active:
        raise InactiveCard("on-us card not active")
    if not t.request.get("52"):
        raise IncorrectPin("PIN block missing")
    keys = _pin_key(t, sv), _pvk(sv)  # a key missing is 96 before any try is reserved
    deadline = time.monotonic() + sv.writer.time_left(t.received_at)
    if not await sv.pins.reserve(pan_hash, deadline):
        raise PinTriesExceeded("PIN tries exceeded")
    try:
        right = await _verify(t, sv, pan, card, *keys)
    except BaseException:
        await give_back_try(sv, pan_hash)
        raise
    if not right:
        if await sv.pins.count_wrong(pan_hash) >= sv.pin_tries:
            raise PinTriesExceeded("PIN tries exceeded")
        raise IncorrectPin("PIN does not verify")
    t.wallet = card.wallet_account
    # Released with the next batch of tries, while the payment goes to the ledger; the
    # pay step waits for it after the ledger answered (so an answer means released).
    t.pin_released = sv.pins.count_right(pan_hash)
    t.pin_released.addErrback(_not_released)


def _not_released(failure: Failure) -> None:
    """The right PIN's try stays reserved until its hold runs out: the safe side."""
    log.warning("PIN try not released", error=failure.type.__name__)


async def give_back_try(sv: Services, pan_hash: str) -> None:
    """Give back a reservation whose try was not decided; if even that fails, the try stays
    reserved until its hold runs out (the safe side) and the caller's own error is what
    is answered."""
    try:
        await sv.pins.give_back(pan_hash)
    except Exception as exc:
        log.warning("PIN try not given back", error=type(exc).__name__)


async def _verify(t: Transaction, sv: Services, pan: str, card: Card, tpk, pvk) -> bool:  # type: ignore[no-untyped-def]
    try:
        return await sv.hsm.verify_pin_pvv(tpk, pvk, _pin_block(t), pan, int(card.pvki), card.pvv)
    except HsmError as exc:
        if exc.code not in PIN_DATA_ERRORS:
            raise
        decline, reason = PIN_DATA_ERRORS[exc.code]
        raise decline(f"{reason} (HSM {exc.code})") from None


def _pin_block(t: Transaction) -> PinBlock:
    control = t.request.get("53", "")
    return PinBlock(t.request["52"], control[:2] if control[:2].isdigit() else DEFAULT_PIN_FORMAT)


def _pin_key(t: Transaction, sv: Services):  # type: ignore[no-untyped-def]
    assert t.terminal is not None
    owner = owner_of(t.terminal.acquirer_id, t.terminal.terminal_id)
    key = sv.keys().active(owner, PIN_KEY[t.origin.kind])
    if key is None:
        raise MissingKey(f"no active {PIN_KEY[t.origin.kind]} for {owner}")
    return key


def _pvk(sv: Services):  # type: ignore[no-untyped-def]
    key = sv.keys().active(ISSUER, "PVK")
    if key is None:
        raise MissingKey(f"no active PVK for {ISSUER}")
    return key
