"""Bill inquiry: what does this account owe? No money moves."""

from __future__ import annotations

from iso.amounts import additional_amount, amount_field
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
    t.out["48"] = build_bill_data(t.out_bill)
    t.out.setdefault("49", biller.currency)
    return t.response("00")
