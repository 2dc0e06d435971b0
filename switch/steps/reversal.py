"""Reversal (0400) and reversal advice (0420/0421), full or partial (DE 95)."""

from __future__ import annotations

from iso.amounts import parse_original_data, parse_replacement_amount
from iso.errors import IsoFormatError
from switch.errors import FormatError
from switch.ledger.postings import RequestKey, ReversalOrder
from switch.services import Services
from switch.steps.checks import amount_of
from switch.steps.payment import request_key
from switch.transaction import Transaction


def _original(t: Transaction) -> RequestKey:
    try:
        original = parse_original_data(t.field("90"))
    except IsoFormatError as exc:
        raise FormatError("90") from exc
    assert t.terminal is not None
    return RequestKey(
        t.terminal.acquirer_id, t.terminal_id, original.stan, original.transmitted, original.mti
    )


def _kept(t: Transaction) -> int:
    """The amount finally kept (DE 95); none means a full reversal."""
    if "95" not in t.request:
        return 0
    try:
        return parse_replacement_amount(t.request["95"])
    except IsoFormatError as exc:
        raise FormatError("95") from exc


async def reverse(t: Transaction, sv: Services) -> dict[str, str]:
    order = ReversalOrder(
        key=request_key(t),
        request_hash=sv.hasher.request(t.mti, t.request),
        respond=lambda outcome: t.response(outcome.code, {}),
        business_day=t.business_day,  # type: ignore[arg-type]
        original=_original(t),
        kept=_kept(t),
        advice=t.mti == "0420",
        amount=amount_of(t),  # compared with the original's, as DE 49 and DE 95 are
        currency=t.request.get("49"),
    )
    recorded = await sv.writer.submit(order, t.received_at)
    return recorded.response
