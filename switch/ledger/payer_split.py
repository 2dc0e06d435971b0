"""A payer code's debts in one order, and a payment split over them, oldest debt first.

Pure functions, shared by the inquiry (DE 48 DL), the payment step (the plan whose
online parts go to their billers) and the ledger (the held parts, decided again
under lock), so that what a terminal was shown is what a payment of that total
pays: the same order, the same split.

Oldest first means by period (YYYYMM; a debt without one comes last), then biller
code, account and, within one account and period, the debt's id: a total order
every node computes alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from switch.ledger.amount_rules import due_violation
from switch.ledger.reference import Biller

NO_PERIOD = "999999"  # sorts a debt without a period after every dated one
SEPARATOR = ";"

AccountKey = tuple[str, str]  # (biller code, account)


@dataclass(frozen=True)
class Debt:
    """One open debt of one of a payer code's accounts (held: a ``debts`` row; online:
    what the biller's fetch answered)."""

    biller: str
    account: str
    period: str
    amount: int
    seq: int = 0  # the debt's id for held debts: the order within an account and period

    @property
    def account_key(self) -> AccountKey:
        return (self.biller, self.account)

    def entry(self) -> str:
        """Its DL entry, ``BL:AC:amount:period``."""
        return f"{self.biller}:{self.account}:{self.amount}:{self.period}"


@dataclass(frozen=True)
class Part:
    """What a split pays one account: ``amount`` of the ``due`` its listed debts total."""

    biller: str
    account: str
    amount: int
    due: int

    @property
    def account_key(self) -> AccountKey:
        return (self.biller, self.account)

    def entry(self) -> str:
        """Its AL entry, ``BL:AC:amount``."""
        return f"{self.biller}:{self.account}:{self.amount}"


def _key(debt: Debt) -> tuple[str, str, str, int]:
    return (debt.period or NO_PERIOD, debt.biller, debt.account, debt.seq)


def oldest_first(debts: Iterable[Debt]) -> list[Debt]:
    return sorted(debts, key=_key)


def split(debts: Iterable[Debt], amount: int) -> list[Part]:
    """``amount`` over ``debts`` oldest first: one part per account, in the order of the
    oldest debt it pays. What exceeds the total goes to the account of the newest debt
    (the caller decides whether an overpayment is allowed). No debts: no parts."""
    ordered = oldest_first(debts)
    due: dict[AccountKey, int] = {}
    for debt in ordered:
        due[debt.account_key] = due.get(debt.account_key, 0) + debt.amount
    paid: dict[AccountKey, int] = {}
    left = amount
    for debt in ordered:
        if left <= 0:
            break
        now = min(debt.amount, left)
        if now > 0:
            paid[debt.account_key] = paid.get(debt.account_key, 0) + now
            left -= now
    if left > 0 and ordered:
        newest = ordered[-1].account_key
        paid[newest] = paid.get(newest, 0) + left
    return [Part(b, a, value, due[(b, a)]) for (b, a), value in paid.items()]


def part_violation(biller: Biller, part: Part, currency: str) -> str | None:
    """Why ``part`` breaks its biller's rules, if it does: the currency, partial payment
    and overpayment against what the account owes, the biller's maximum, and its minimum
    (unless the part clears what the account owes: a debt below the minimum is payable)."""
    if biller.currency != currency:
        return f"{biller.code}: currency differs from the biller's"
    broken = due_violation(biller, part.amount, part.due)
    if broken:
        return f"{biller.code}: {broken}"
    if biller.max_amount and part.amount > biller.max_amount:
        return f"{biller.code}: above the biller's maximum"
    if part.amount < biller.min_amount and part.amount < part.due:
        return f"{biller.code}: below the biller's minimum"
    return None


def listing(debts: Sequence[Debt], room: int) -> list[Debt]:
    """The oldest debts whose DL entries fit in ``room`` characters, joined by ``;``:
    whole entries only, so a DL that does not hold every debt lists the oldest ones
    (and paying its total pays exactly those)."""
    shown: list[Debt] = []
    used = 0
    for debt in oldest_first(debts):
        size = len(debt.entry()) + (len(SEPARATOR) if shown else 0)
        if used + size > room:
            break
        shown.append(debt)
        used += size
    return shown


def joined(items: Iterable[Debt | Part]) -> str:
    return SEPARATOR.join(item.entry() for item in items)
