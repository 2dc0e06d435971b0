"""Acquirer reconciliation (0500): the acquirer's day totals against the ledger's."""

from __future__ import annotations

from datetime import UTC, date, datetime

from iso.amounts import net_settlement, parse_signed
from iso.errors import IsoFormatError
from switch.errors import FormatError
from switch.ledger.days import closed_day_totals
from switch.ledger.queries import Totals
from switch.services import Services
from switch.transaction import Transaction

# Bill payments debit the payer, so they count as debits (ISO 8583 DE 76/88),
# their reversals as debit reversals (77/89); the network has no credits.
COUNT_FIELDS = {"74": 10, "75": 10, "76": 10, "77": 10}
AMOUNT_FIELDS = {"86": 16, "87": 16, "88": 16, "89": 16}


def totals_fields(totals: Totals) -> dict[str, str]:
    values = {
        "74": 0,
        "75": 0,
        "76": totals.payments,
        "77": totals.reversals,
        "86": 0,
        "87": 0,
        "88": totals.payment_amount,
        "89": totals.reversal_amount,
    }
    sizes = COUNT_FIELDS | AMOUNT_FIELDS
    # int(): PostgreSQL sums BIGINT columns as NUMERIC, which arrives as a Decimal.
    fields = {de: f"{int(v):0{sizes[de]}d}" for de, v in values.items()}
    fields["97"] = net_settlement(int(totals.net))
    return fields


def settlement_day(t: Transaction) -> date:
    """DE 15 (MMDD) names the business day; without it, the current one."""
    assert t.business_day is not None
    mmdd = t.request.get("15")
    if not mmdd:
        return t.business_day
    try:
        candidates = [
            date(t.business_day.year + dy, int(mmdd[:2]), int(mmdd[2:])) for dy in (-1, 0, 1)
        ]
    except ValueError as exc:
        raise FormatError("15") from exc
    return min(candidates, key=lambda d: abs((d - t.business_day).days))


def _matches(t: Transaction, ours: dict[str, str]) -> bool:
    for de in COUNT_FIELDS | AMOUNT_FIELDS:
        if int(t.request.get(de, "0") or "0") != int(ours[de]):
            return False
    if "97" in t.request:
        try:
            return parse_signed(t.request["97"]) == parse_signed(ours["97"])
        except IsoFormatError as exc:
            raise FormatError("97") from exc
    return True


async def reconcile(t: Transaction, sv: Services) -> dict[str, str]:
    assert t.terminal is not None
    day = settlement_day(t)
    # A past day is closed first (waiting for batches writing into it), so the totals
    # answered are final; a transaction, since closing writes.
    assert t.business_day is not None
    totals = await sv.reads.transaction(
        closed_day_totals, t.terminal.acquirer_id, day, t.business_day, datetime.now(UTC)
    )
    ours = totals_fields(totals)
    if _matches(t, ours):
        return t.response("00", {})
    return t.response("95", ours)
