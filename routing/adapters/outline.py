"""Adapter for outline billers (mobile top-ups and the like): nothing to look up.

Any account is accepted and any amount within the biller's limits (checked by
the switch like every biller's); the biller learns of payments from the
settlement report. So an inquiry is answered at once with no amount due, and
the payment happens in the ledger, with no debts to decide against.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from routing.adapters.local import LocalAdapter
from routing.bills import Bill

_ANY_ACCOUNT = Bill(name="", amount_due=None, debts=())


class OutlineAdapter(LocalAdapter):
    kind = "outline"

    def fetch_bill(
        self, biller_code: str, account: str, period: str | None
    ) -> Deferred[Bill | None]:
        return succeed(_ANY_ACCOUNT)
