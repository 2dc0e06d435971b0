"""A biller's amount rules, declared as tables: a payment breaking one gets 13.

Two tables, because they are checked where their facts are known:

- ``ON_ARRIVAL``: the amount (DE 4) and currency (DE 49) against the biller's settings,
  for every kind of biller, in the pipeline before anything is written or sent
  (switch/steps/checks.py);
- ``AGAINST_DUE``: the amount against what the account owes, where the switch knows it
  (held billers, in the ledger with the debts locked: switch/ledger/payments.py).
  An outline biller has no amount due; an online biller applies its own rules (its
  ``amount_not_accepted`` is 13 as well).

A biller is "exact only" with neither partial payment nor overpayment allowed, takes
"partial" payments below the amount due and "top-ups" above it. The amounts are the
bill's (DE 4): a payer's fee (DE 28) is on top and not part of them. Advices (0220) are
never declined for these rules: the acquirer has taken the money already.
"""

from __future__ import annotations

from collections.abc import Callable

from switch.ledger.reference import Biller

# (why, broken(biller, amount, currency)), checked in order: the first broken one is said.
ON_ARRIVAL: tuple[tuple[str, Callable[[Biller, int, str], bool]], ...] = (
    ("zero amount", lambda b, amount, currency: amount == 0),
    ("currency differs from the biller's", lambda b, amount, currency: currency != b.currency),
    ("below the biller's minimum", lambda b, amount, currency: amount < b.min_amount),
    (
        "above the biller's maximum",
        lambda b, amount, currency: b.max_amount is not None and amount > b.max_amount,
    ),
)

# (why, broken(biller, amount, due)), checked in order.
AGAINST_DUE: tuple[tuple[str, Callable[[Biller, int, int], bool]], ...] = (
    (
        "above the amount due and overpayment is not allowed",
        lambda b, amount, due: amount > due and not b.overpay_allowed,
    ),
    (
        "below the amount due and partial payment is not allowed",
        lambda b, amount, due: amount < due and not b.partial_allowed,
    ),
)


def arrival_violation(biller: Biller, amount: int, currency: str) -> str | None:
    """Why the amount or currency breaks the biller's settings, if it does."""
    return next((why for why, broken in ON_ARRIVAL if broken(biller, amount, currency)), None)


def due_violation(biller: Biller, amount: int, due: int) -> str | None:
    """Why ``amount`` breaks the biller's partial/overpayment rules against ``due``."""
    return next((why for why, broken in AGAINST_DUE if broken(biller, amount, due)), None)
