"""The fee of a payment or advice, priced from the node's fee rules (no database read).

The rules are reference data (switch/ledger/fees.py): the snapshot every node keeps and
refreshes every ``reference_refresh`` seconds. The fee is priced on the bill amount
(DE 4) by biller, channel and acquirer, and travels with the payment to the ledger,
which posts it in the payment's own transaction; a payer's fee is shown in DE 28.
"""

from __future__ import annotations

from switch.services import Services
from switch.transaction import Transaction


async def price(t: Transaction, sv: Services) -> None:
    """Step: ``t.fee`` for the payment's biller, channel and acquirer. An advice parked in
    suspense (no known biller) carries none."""
    if t.biller is None or t.terminal is None:
        return
    t.fee = sv.reference().fees.price(
        t.biller.code, t.origin.kind, t.terminal.acquirer_id, t.amount
    )
