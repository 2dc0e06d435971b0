"""What may still be paid, and which approved payments may still be reversed.

The demo data has only a few accounts that owe money, and the switch refuses
overpayment (code 13) for UTIL01. So the generator keeps its own book of the
open amount of each account (learnt from an inquiry at start), reserves a
small random amount before each payment and gives it back when the payment is
declined or reversed. Payments never exceed what it believes is owed; when
every debt is used up, the caller sends an inquiry instead and counts the
substitution.
"""

from __future__ import annotations

import random
from collections import deque

from loadtest.identity import Identity
from loadtest.workload import Original


class DebtBook:
    """Open amount per account; ``None`` means unlimited (echo server, no discovery)."""

    def __init__(
        self,
        budgets: dict[str, int | None],
        max_amount: int,
        rng: random.Random,
        min_amount: int = 1,
    ):
        if max_amount < 1:
            raise ValueError("max amount must be at least 1 minor unit")
        self._left = dict(budgets)
        self._max = max_amount
        self._min = min_amount  # a biller's minimum (outline MOB01: 100)
        self._rng = rng
        self._payable = [acc for acc, left in budgets.items() if left is None or left > 0]

    @property
    def accounts(self) -> list[str]:
        """Accounts the book knows, payable or not."""
        return list(self._left)

    def reserve(self) -> tuple[str, int] | None:
        """Pick an account and an amount it can take, and set that amount aside."""
        if not self._payable:
            return None
        account = self._rng.choice(self._payable)
        left = self._left[account]
        most = self._max if left is None else min(self._max, left)
        amount = self._rng.randint(min(self._min, most), most)
        if left is not None:
            self._left[account] = left - amount
            if left == amount:
                self._payable.remove(account)
        return account, amount

    def release(self, account: str, amount: int) -> None:
        """Give back an amount that was not (or is no longer) paid."""
        left = self._left.get(account)
        if left is None:
            return
        if left == 0:
            self._payable.append(account)
        self._left[account] = left + amount


class ReversalPool:
    """Approved payments per terminal, oldest first, each reversed at most once."""

    def __init__(self) -> None:
        self._by_terminal: dict[str, deque[Original]] = {}

    def add(self, original: Original) -> None:
        """Remember an approved payment as a reversal candidate."""
        self._by_terminal.setdefault(original.header.identity.key, deque()).append(original)

    def take(self, identity: Identity) -> Original | None:
        """The oldest unreversed payment of this terminal, removed from the pool."""
        queue = self._by_terminal.get(identity.key)
        return queue.popleft() if queue else None
