"""What a biller says an account owes: the value every adapter returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bill:
    name: str
    amount_due: int
    debts: tuple[tuple[str, int], ...]  # (period, open amount), oldest first
    invoice: str | None = None  # the biller's invoice number, passed back with the payment
