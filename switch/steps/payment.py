"""Bill payment (0200) and payment advice (0220): recorded by the ledger writer."""

from __future__ import annotations

from iso.amounts import amount_field, fee_amount
from iso.bill_data import build_bill_data
from switch.cardholder import mask_pan
from switch.errors import InvalidAmount
from switch.ledger.postings import Outcome, PaymentOrder, RequestKey
from switch.services import Services
from switch.steps.checks import amount_of
from switch.transaction import Transaction


def request_key(t: Transaction) -> RequestKey:
    assert t.terminal is not None
    return RequestKey(t.terminal.acquirer_id, t.terminal_id, t.field("11"), t.field("7"), t.mti)


def receipt_number(payment_id: int) -> str:
    return f"P{payment_id:010d}"


def payment_response(t: Transaction, outcome: Outcome) -> dict[str, str]:
    """The 0210/0230; runs in the writer thread, so it only reads ``t``."""
    if outcome.code != "00":
        return t.response(outcome.code, {})
    facts = outcome.facts
    bill = dict(t.out_bill, RN=receipt_number(facts["payment_id"]))
    if "due" in facts:  # an acknowledged repeat of an approved payment says nothing of debts
        bill["DU"] = amount_field(facts["due"])
    out = {"38": facts["auth_code"], "48": build_bill_data(bill)}
    if t.biller is not None:  # what the payer pays on top: D00000000 when the biller pays
        out["28"] = fee_amount(t.fee.on_top)
    return t.response("00", out)


def order(
    t: Transaction, sv: Services, advice: bool, kind: type[PaymentOrder] = PaymentOrder
) -> PaymentOrder:
    """The ledger order of this payment or advice (``kind``: online billers' have theirs)."""
    pan = t.request.get("2")
    return kind(
        key=request_key(t),
        request_hash=sv.hasher.request(t.mti, t.request),
        respond=lambda outcome: payment_response(t, outcome),
        business_day=t.business_day,  # type: ignore[arg-type]
        biller=t.biller,
        account=t.bill_data["AC"],
        period=t.bill_data.get("PE"),
        amount=t.amount,
        currency=t.request.get("49", t.biller.currency if t.biller else ""),
        advice=advice,
        channel=t.origin.kind,
        rrn=t.request.get("37"),
        masked_pan=mask_pan(pan) if pan else None,
        pan_hash=t.pan_hash or (sv.hasher.pan(pan) if pan else None),
        wallet=t.wallet,
        fee=t.fee.amount,
        fee_payer=t.fee.payer,
    )


async def pay(t: Transaction, sv: Services) -> dict[str, str]:
    recorded = await sv.writer.submit(order(t, sv, advice=False), t.received_at)
    await pin_released(t)
    return recorded.response


async def pin_released(t: Transaction) -> None:
    """A right PIN's try is released with the next batch of tries while the payment goes
    on (switch/security/cards.py); its answer waits for that, so an answer means released."""
    if t.pin_released is not None:  # released meanwhile, as a rule
        await t.pin_released


async def advice_route(t: Transaction, sv: Services) -> None:
    """An advice is recorded whatever the biller: unknown or mismatched ones go to suspense."""
    t.amount = amount_of(t)
    if t.amount == 0:
        raise InvalidAmount("zero amount")
    biller = sv.reference().biller(t.bill_data["BL"])
    currency = t.field("49")
    t.biller = biller if biller is not None and biller.currency == currency else None


async def record_advice(t: Transaction, sv: Services) -> dict[str, str]:
    recorded = await sv.writer.submit(order(t, sv, advice=True), t.received_at)
    return recorded.response
