"""Bill inquiry: what does this account owe? No money moves."""

from __future__ import annotations

from iso.amounts import additional_amount, amount_field, fee_amount
from iso.bill_data import build_bill_data
from iso.text import mask_name
from switch.errors import UnknownAccount
from switch.services import Services
from switch.transaction import Transaction

AMOUNT_DUE = "40"


async def inquire(t: Transaction, sv: Services) -> dict[str, str]:
    biller = t.biller
    assert biller is not None
    adapter = sv.router.adapter(biller.kind)
    bill = await adapter.fetch_bill(biller.code, t.bill_data["AC"], t.bill_data.get("PE"))
    if bill is None:
        raise UnknownAccount("account unknown at the biller")
    if bill.name:
        t.out_bill["NM"] = mask_name(bill.name)
    if bill.amount_due is not None:
        t.out_bill["DU"] = amount_field(bill.amount_due)
        t.out["54"] = additional_amount(bill.amount_due, biller.currency, AMOUNT_DUE)
        _fee_of_paying(t, sv, bill.amount_due)
    t.out["48"] = build_bill_data(t.out_bill)
    t.out.setdefault("49", biller.currency)
    return t.response("00")


def _fee_of_paying(t: Transaction, sv: Services, due: int) -> None:
    """DE 28: what the payer would pay on top to pay the amount due, when a payer's fee
    applies (nothing when none does, or the biller pays it: the answer stays as it was)."""
    assert t.biller is not None and t.terminal is not None
    if due <= 0:
        return
    fee = sv.reference().fees.price(t.biller.code, t.origin.kind, t.terminal.acquirer_id, due)
    if fee.on_top:
        t.out["28"] = fee_amount(fee.on_top)
