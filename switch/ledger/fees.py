"""The switch's fees: rules as data (``fee_rules``), the most specific one wins.

A rule may name a biller, a channel (ATM, POS, HOST) and an acquirer; each it leaves
out (NULL) matches any. For a payment the rules are tried in ``PRECEDENCE`` order and
the first that matches prices it. A rule charges ``fixed`` plus ``percent_bp`` basis
points of the amount (1 % = 100), the percent part rounded half up to whole minor
units, then held between ``min_fee`` and ``max_fee``. All of it is integer arithmetic on
minor units: no float ever touches money.

Who pays (``payer``):

- ``payer``: on top of the bill. The 0210/0230 shows it in DE 28, the acquirer owes
  amount + fee (an on-us wallet pays both);
- ``biller``: deducted from what the biller is owed; the payer pays the amount only.

Rules are reference data: read with the other reference data into each node's
snapshot (switch/ledger/reference.py, refreshed every ``reference_refresh``), never
per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, select

from switch.ledger import schema as s

PAYER = "payer"
BILLER = "biller"
PAYERS = (PAYER, BILLER)
CHANNELS = ("ATM", "POS", "HOST")

BASIS = 10_000  # basis points in a whole (100 %)
# DE 28 holds 8 digits: no fee may be larger than it can say.
LARGEST_FEE = 99_999_999

# Which of (biller, acquirer, channel) a rule names, most specific first: a rule naming
# the biller beats any that does not, then the acquirer counts, then the channel. (The
# biller's contract is what a fee is mostly about; an acquirer's deal comes next.)
PRECEDENCE: tuple[tuple[bool, bool, bool], ...] = (
    (True, True, True),
    (True, True, False),
    (True, False, True),
    (True, False, False),
    (False, True, True),
    (False, True, False),
    (False, False, True),
    (False, False, False),
)

Scope = tuple[str | None, str | None, str | None]  # (biller, acquirer, channel); None: any


@dataclass(frozen=True)
class Fee:
    """A payment's fee and who pays it."""

    amount: int = 0
    payer: str = PAYER

    @property
    def on_top(self) -> int:
        """What the payer pays beyond the bill (DE 28): the fee if the payer pays it."""
        return self.amount if self.payer == PAYER else 0

    @property
    def from_biller(self) -> int:
        """What is taken from the biller's payable."""
        return self.amount if self.payer == BILLER else 0


NO_FEE = Fee()


@dataclass(frozen=True)
class FeeRule:
    id: int
    biller_code: str | None
    channel: str | None
    acquirer_id: str | None
    fixed: int = 0
    percent_bp: int = 0
    min_fee: int = 0
    max_fee: int | None = None
    payer: str = PAYER

    @property
    def scope(self) -> Scope:
        return (self.biller_code, self.acquirer_id, self.channel)

    def charge(self, amount: int) -> Fee:
        """This rule's fee on ``amount`` (minor units)."""
        fee = self.fixed + percent_of(amount, self.percent_bp)
        fee = max(fee, self.min_fee)
        if self.max_fee is not None:
            fee = min(fee, self.max_fee)
        if self.payer == BILLER:  # never more than the biller is paid
            fee = min(fee, amount)
        return Fee(min(max(fee, 0), LARGEST_FEE), self.payer)


def percent_of(amount: int, basis_points: int) -> int:
    """``amount * basis_points / 10000`` rounded half up to a whole minor unit
    (amounts and rates are never negative): 0.5 and above goes up."""
    return (amount * basis_points * 2 + BASIS) // (2 * BASIS)


class FeeRules:
    """The rules of one snapshot, indexed by scope."""

    def __init__(self, rules: Iterable[FeeRule] = ()) -> None:
        self._by_scope: dict[Scope, FeeRule] = {}
        for rule in sorted(rules, key=lambda r: r.id):  # of two rules of one scope, the older
            self._by_scope.setdefault(rule.scope, rule)

    def __len__(self) -> int:
        return len(self._by_scope)

    def rule_for(self, biller_code: str, channel: str, acquirer_id: str) -> FeeRule | None:
        """The most specific rule matching the payment (``PRECEDENCE``), if any."""
        if not self._by_scope:
            return None
        for by_biller, by_acquirer, by_channel in PRECEDENCE:
            scope = (
                biller_code if by_biller else None,
                acquirer_id if by_acquirer else None,
                channel if by_channel else None,
            )
            rule = self._by_scope.get(scope)
            if rule is not None:
                return rule
        return None

    def price(self, biller_code: str, channel: str, acquirer_id: str, amount: int) -> Fee:
        """The fee of a payment of ``amount`` (none without a matching rule)."""
        rule = self.rule_for(biller_code, channel, acquirer_id)
        return NO_FEE if rule is None else rule.charge(amount)


_f = s.fee_rules.c


def load_fee_rules(conn: Connection) -> FeeRules:
    return FeeRules(
        FeeRule(
            r.id,
            r.biller_code,
            r.channel,
            r.acquirer_id,
            r.fixed,
            r.percent_bp,
            r.min_fee,
            r.max_fee,
            r.payer,
        )
        for r in conn.execute(select(s.fee_rules))
    )
