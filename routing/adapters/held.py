"""Adapter for billers whose debts the switch itself holds (loaded from their files).

Bills are read from the switch's own database; payments reduce those debts
inside the ledger transaction, so this adapter only answers "what is owed".
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from routing.adapters.local import LocalAdapter
from routing.bills import Bill

BillLookup = Callable[[str, str, str | None], Deferred[Bill | None]]


class HeldDebtsAdapter(LocalAdapter):
    kind = "held"

    def __init__(self, lookup: BillLookup) -> None:
        self._lookup = lookup

    def fetch_bill(
        self, biller_code: str, account: str, period: str | None
    ) -> Deferred[Bill | None]:
        return self._lookup(biller_code, account, period)
