"""What a biller says an account owes: the value every adapter returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bill:
    """``amount_due`` None: the biller states no amount (outline billers take any amount
    within their limits), so the answer carries no DU and no DE 54."""

    name: str
    amount_due: int | None
    debts: tuple[tuple[str, int], ...]  # (period, open amount), oldest first
    invoice: str | None = None  # the biller's invoice number, passed back with the payment
