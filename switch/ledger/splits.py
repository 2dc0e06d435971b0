"""A payment by payer code, split over the code's accounts: one ledger transaction.

One request, one identity, one answer: the acquirer paid one amount (DE 4), so the
split is one order of the writer's batch and writes

- one payment row for the whole request, the **head** (``biller_code`` empty,
  ``account`` the payer code, ``amount`` DE 4, ``fee`` the parts' billers' fees):
  the transaction identity and the request row point at it, and its journal rows
  are the acquirer's (``payment``: receivable to the split clearing account
  ``SPLIT:<cur>``; ``fee``), so a 0500 counts the split once;
- one payment row per account paid, the **parts** (that biller, that account, the
  part's amount; an online part with its payment id, reference, receipt and token
  at the biller): what each biller is owed, with the allocations of the held parts
  to their debts, and each with its own ``payment`` journal row (no acquirer: from
  the clearing account to the biller's payable), so a biller's day (settlement,
  payment files) sees its parts as payments of its own.

``payments.split_of`` holds the head's id on the head and on each part.

Online parts are paid at their billers before the order is queued (the settle rows
committed first, switch/steps/payers.py) and come as accepted facts. Held parts are
decided here, under the debts' locks: what is left of DE 4 after the online parts is
spread over the held accounts' open debts oldest first, so without online parts the
split is exactly the oldest-first split of what the debts are at commit. The order
posts only if every online part's settle row is still pending and unclaimed (as a
single online payment, switch/ledger/online.py); otherwise, or when the held parts
break a rule, the split is declined whole and the online parts' settle rows are made
due at once: the delivery loop reverses what the billers accepted.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from routing.billers import Accepted
from switch.ledger import accounts as acc
from switch.ledger import schema as s
from switch.ledger.fees import BILLER, NO_FEE, PAYER, Fee, FeeRules
from switch.ledger.journal import Posting, post_all
from switch.ledger.online import Intent, arm, take_settle_rows
from switch.ledger.orders import PAID, Order, Outcome
from switch.ledger.payer_split import Debt, Part, oldest_first, part_violation, split
from switch.ledger.payments import PAYMENT_COLUMNS, _open_debts, allocate
from switch.ledger.reference import Biller
from switch.ledger.sql import Writes, bind, next_ids_of

SPLIT_COLUMNS = (*PAYMENT_COLUMNS, "split_of")
_ALLOCATIONS = ("payment_id", "debt_id", "amount", "reversed_amount")


@dataclass(frozen=True)
class OnlinePart:
    """A part an online biller accepted: ``period`` orders it among the debts (AL)."""

    biller: Biller
    account: str
    amount: int
    due: int
    period: str
    payment_id: str  # its idempotency key at the biller
    accepted: Accepted

    @property
    def part(self) -> Part:
        return Part(self.biller.code, self.account, self.amount, self.due)


@dataclass(frozen=True)
class Paid:
    """One part as written: the split's AL entry, its debts paid (held) or its biller's
    facts (online)."""

    part: Part
    biller: Biller
    allocations: tuple[tuple[int, int], ...] = ()  # (debt id, amount)
    online: OnlinePart | None = None


@dataclass
class SplitPaymentOrder(Order):
    """A 0200 by payer code (see the module's docstring). ``held``: the code's accounts
    at held billers; ``online``: the parts online billers accepted; ``online_due``: what
    the online accounts owed when asked (for DU)."""

    payer_code: str
    held: tuple[tuple[Biller, str], ...]
    online: tuple[OnlinePart, ...]
    online_due: int
    amount: int
    currency: str
    channel: str
    rrn: str | None = None
    masked_pan: str | None = None
    pan_hash: str | None = None
    fees: FeeRules | None = None  # the node's fee rules: each part priced as its own payment

    @property
    def accounts(self) -> list[tuple[str, str]]:
        """Every account the split may pay (its conflict keys in a batch)."""
        return [(b.code, a) for b, a in self.held] + [
            (p.biller.code, p.account) for p in self.online
        ]

    def apply(self, conn: Connection, now: datetime, writes: Writes) -> Outcome:
        ids = [p.payment_id for p in self.online]
        # The free settle rows are taken (deleted) now and stay gone only if the split is
        # posted; any other outcome arms them all again, due at once.
        if ids and len(take_settle_rows(conn, ids, now)) != len(ids):
            self._settle_now(conn, now)  # a settlement is under way or done: never post
            return Outcome("05")
        by_code = {b.code: b for b, _ in self.held}
        open_debts = _open_debts(conn, {(b.code, a) for b, a in self.held})
        debts = [
            Debt(code, account, d.period, d.open, d.id)
            for (code, account), found in open_debts.items()
            for d in found
        ]
        outcome = self._decide(debts, by_code)
        if outcome.code != "00":
            self._settle_now(conn, now)
            return outcome
        self._write(conn, outcome, now, writes)
        return outcome

    def _settle_now(self, conn: Connection, now: datetime) -> None:
        """The online parts will not be posted: their settle rows are due at once."""
        if self.online:
            arm(conn, [Intent(p.biller.code, p.payment_id, 0) for p in self.online], now)

    def _decide(self, debts: list[Debt], by_code: dict[str, Biller]) -> Outcome:
        """The held parts: what DE 4 leaves after the online parts, oldest debt first."""
        budget = self.amount - sum(p.amount for p in self.online)
        held_due = sum(d.amount for d in debts)
        if budget < 0 or (budget > 0 and not debts):
            return Outcome("13")  # nothing held is owed for what the online parts leave
        billers = {d.biller: by_code[d.biller] for d in debts}
        billers.update({p.biller.code: p.biller for p in self.online})
        if budget > held_due and not all(b.overpay_allowed for b in billers.values()):
            return Outcome("13")  # above the amount due, and a biller forbids overpayment
        held_parts = split(debts, budget)
        for part in held_parts:
            if part_violation(by_code[part.biller], part, self.currency):
                return Outcome("13")
        paid = [Paid(part, by_code[part.biller], _allocations(debts, part)) for part in held_parts]
        paid += [Paid(p.part, p.biller, online=p) for p in self.online]
        paid = _oldest_first(paid, debts, self.online)
        due = max(0, held_due + self.online_due - self.amount)
        charged = [self._fee(p) for p in paid]
        facts = {
            "parts": paid,
            "due": due,
            "fee": sum(f.on_top for f in charged),
            "part_fees": [f.from_biller for f in charged],
            "auth_code": f"{secrets.randbelow(1_000_000):06d}",
        }
        return Outcome("00", facts, claim=PAID)

    def _fee(self, paid: Paid) -> Fee:
        """A part's fee, as the same payment to its biller alone would be charged: the
        payer's fees add up on the head (DE 28), a biller's is taken from its part."""
        if self.fees is None:
            return NO_FEE
        return self.fees.price(
            paid.part.biller, self.channel, self.key.acquirer_id, paid.part.amount
        )

    def _write(self, conn: Connection, outcome: Outcome, now: datetime, writes: Writes) -> None:
        """The head, the parts, their allocations and debts, the journal: into ``writes``."""
        facts = outcome.facts
        paid: list[Paid] = facts["parts"]
        fee, part_fees = facts["fee"], facts["part_fees"]
        fee_rows = (1 if fee else 0) + sum(1 for f in part_fees if f)
        ids, journal_ids = next_ids_of(
            conn, [(s.payments, 1 + len(paid)), (s.journal, 1 + len(paid) + fee_rows)]
        )
        head = ids[0]
        facts["payment_id"] = head
        day = bind(conn, s.payments.c.business_day)(self.business_day)
        at = bind(conn, s.payments.c.created_at)(now)
        common = (self.key.acquirer_id, self.key.terminal_id, self.channel)
        card = (self.masked_pan, self.pan_hash, day, at)
        rows = [
            (head, *common, "", self.payer_code, self.amount, fee, PAYER, 0, self.currency,
             False, self.rrn, facts["auth_code"], *card, None, None, None, None, head)
        ]  # fmt: skip
        for payment_id, p, part_fee in zip(ids[1:], paid, part_fees, strict=True):
            online = p.online
            facts_there = (
                (online.payment_id, online.accepted.biller_ref, online.accepted.receipt,
                 online.accepted.token)
                if online else (None, None, None, None)
            )  # fmt: skip
            rows.append(
                (payment_id, *common, p.part.biller, p.part.account, p.part.amount,
                 part_fee, BILLER if part_fee else PAYER, 0, self.currency, False, self.rrn,
                 facts["auth_code"], *card, *facts_there, head)
            )  # fmt: skip
        writes.insert(s.payments, SPLIT_COLUMNS, rows)
        allocations = [
            (payment_id, debt_id, amount, 0)
            for payment_id, p in zip(ids[1:], paid, strict=True)
            for debt_id, amount in p.allocations
        ]
        if allocations:
            by_debt = sorted((debt_id, amount) for _, debt_id, amount, _ in allocations)
            writes.update(s.debts.c.amount_open, "amount_open - {new}", ("id",), by_debt)
            writes.insert(s.allocations, _ALLOCATIONS, allocations)
        postings = self._postings(head, list(zip(ids[1:], paid, part_fees, strict=True)), fee)
        post_all(conn, postings, now, writes, journal_ids)

    def _postings(self, head: int, parts: list[tuple[int, Paid, int]], fee: int) -> list[Posting]:
        """The head's journal rows (the acquirer's: its payment into the split clearing
        account, the fee) and each part's (no acquirer: from the clearing account to its
        biller's payable), so a 0500 counts the split once and each biller's day sees
        its own payments."""
        receivable = acc.acquirer_receivable(self.key.acquirer_id, self.currency)
        clearing = acc.split_clearing(self.currency)
        day = self.business_day
        result = [
            Posting(
                "payment", head, self.key.acquirer_id, self.currency, day,
                ((receivable, self.amount), (clearing, -self.amount)),
            )
        ]  # fmt: skip
        if fee:
            legs = ((receivable, fee), (acc.fee_income(self.currency), -fee))
            result.append(Posting("fee", head, self.key.acquirer_id, self.currency, day, legs))
        for payment_id, p, part_fee in parts:
            payable = acc.biller_payable(p.part.biller, self.currency)
            legs = ((clearing, p.part.amount), (payable, -p.part.amount))
            result.append(Posting("payment", payment_id, None, self.currency, day, legs))
            if part_fee:  # the biller pays it: out of its payable (no acquirer's row)
                legs = ((payable, part_fee), (acc.fee_income(self.currency), -part_fee))
                result.append(Posting("fee", payment_id, None, self.currency, day, legs))
        return result


def _allocations(debts: Sequence[Debt], part: Part) -> tuple[tuple[int, int], ...]:
    """The part's amount over its account's debts, oldest first (a surplus stays on the
    part, unallocated, as an advice's does)."""
    mine = [(d.seq, d.amount) for d in oldest_first(debts) if d.account_key == part.account_key]
    return tuple(allocate(mine, part.amount))


def _oldest_first(
    paid: list[Paid], debts: Sequence[Debt], online: Sequence[OnlinePart]
) -> list[Paid]:
    """The parts in the order of the oldest debt each pays (AL's order)."""
    first: dict[tuple[str, str], Debt] = {}
    for debt in oldest_first(
        [*debts, *(Debt(p.biller.code, p.account, p.period, p.due) for p in online)]
    ):
        first.setdefault(debt.account_key, debt)
    order = {key: i for i, key in enumerate(first)}
    return sorted(paid, key=lambda p: order.get(p.part.account_key, len(order)))


@dataclass
class SplitAnswerOrder(Order):
    """Records a split's decline as its request's answer when online parts may hold money
    (accepted, or in doubt): repeats get the same answer, never a second call. The
    accepted parts' settle rows are made due at once, in the same transaction: the
    delivery loop asks their billers and reverses them (the in-doubt ones settle at
    their time)."""

    code: str = "05"
    settle_now: tuple[Intent, ...] = ()

    def apply(self, conn: Connection, now: datetime, writes: Writes) -> Outcome:
        if self.settle_now:
            arm(conn, list(self.settle_now), now)
        return Outcome(self.code)
