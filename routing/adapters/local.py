"""The part every local adapter shares: billers whose payments happen in the ledger.

Held-debt and outline billers are told of payments by files and settlement,
never by a call, so the remote half of the adapter interface must not be used.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail

from routing.billers import Accepted, PaymentRequest, PaymentStatus


class LocalAdapter:
    remote = False

    def available(self, biller_code: str) -> bool:
        return True  # the ledger is the biller here

    def pay(self, biller_code: str, payment: PaymentRequest) -> Deferred[Accepted]:
        return fail(TypeError(f"{biller_code}: a local biller's payments are made in the ledger"))

    def reverse(self, biller_code: str, payment_id: str) -> Deferred[None]:
        return fail(TypeError(f"{biller_code}: a local biller's reversals are made in the ledger"))

    def status(self, biller_code: str, payment_id: str) -> Deferred[PaymentStatus | None]:
        return fail(TypeError(f"{biller_code}: a local biller has no payment status to ask"))
