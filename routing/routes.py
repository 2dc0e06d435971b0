"""Routes: which adapter serves a biller, by the biller's connection kind.

The table is data: a new kind of biller is a new row and a new adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from twisted.internet.defer import Deferred

from routing.billers import Accepted, PaymentRequest, PaymentStatus
from routing.bills import Bill


class BillerAdapter(Protocol):
    """One biller connection kind.

    ``remote`` adapters (online billers) take the payment themselves: the switch
    records its intent, calls ``pay`` and only then posts to the ledger. For the
    others the ledger is where the payment happens and ``pay`` is never called.
    Failures are ``routing.billers.BillerError`` subclasses.
    """

    kind: str
    remote: bool

    def fetch_bill(
        self, biller_code: str, account: str, period: str | None
    ) -> Deferred[Bill | None]: ...

    def available(self, biller_code: str) -> bool:
        """Whether a call may be worth making now (an open circuit says no)."""
        ...

    def pay(self, biller_code: str, payment: PaymentRequest) -> Deferred[Accepted]: ...

    def reverse(self, biller_code: str, payment_id: str) -> Deferred[None]: ...

    def status(self, biller_code: str, payment_id: str) -> Deferred[PaymentStatus | None]: ...


class NoAdapter(LookupError):
    """No adapter serves this kind of biller (yet)."""


class Router:
    def __init__(self, adapters: Mapping[str, BillerAdapter]) -> None:
        self._by_kind = dict(adapters)

    def adapter(self, kind: str) -> BillerAdapter:
        try:
            return self._by_kind[kind]
        except KeyError:
            raise NoAdapter(kind) from None
