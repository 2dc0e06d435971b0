"""Reversals (0400) and reversal advices (0420) of an earlier payment, full or partial.

Like payments, a batch of reversals costs a fixed handful of statements: one
locking read of the originals' identities (``transactions``) with their payments,
one read of their allocations, one draw of journal ids, then its updates and postings,
gathered into the stage's one write (``sql.Writes``). Several reversals
of one payment in a batch are applied in order, in memory.

A reversal names its original fully: DE 4 (and DE 49 when sent) must be the
original's amount and currency, and DE 95 cannot keep more than it; otherwise 13
and nothing moves. A reversal of an original never seen leaves a tombstone
(``REVERSED_FIRST``) under the original's identity, so that the original, should
it arrive later on any node, is declined (identity.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from switch.ledger import accounts as acc
from switch.ledger import schema as s
from switch.ledger.journal import Posting, post_all
from switch.ledger.online import Reversed, tell_reversals
from switch.ledger.orders import REVERSED_FIRST, BatchOrder, Order, Outcome, RequestKey
from switch.ledger.payments import fee_posting, spend_wallets
from switch.ledger.sql import Writes


@dataclass
class ReversalOrder(BatchOrder):
    """``kept`` is the amount the payer finally paid (DE 95); a reversal moves the
    payment's reversed amount up to ``amount - kept``. Reversing again to the
    same point changes nothing. Surplus first, then debts, newest first.
    """

    original: RequestKey
    kept: int
    advice: bool
    amount: int | None = None  # DE 4: the original's amount (None: not compared)
    currency: str | None = None  # DE 49, when sent

    @classmethod
    def apply_batch(
        cls, conn: Connection, orders: Sequence[Order], now: datetime, writes: Writes
    ) -> list[Outcome]:
        reversals: list[ReversalOrder] = list(orders)  # type: ignore[arg-type]
        payments, tombstones = originals(conn, [r.original for r in reversals])
        allocations = _allocations(conn, payment_ids(payments.values()))
        work = _Work()
        outcomes = [r._decide(payments, tombstones, allocations, work) for r in reversals]
        work.write(conn, now, writes)
        return outcomes

    def _decide(
        self, payments: dict, tombstones: set[tuple], allocations: dict, work: _Work
    ) -> Outcome:
        key = original_key(self.original)
        payment = payments.get(key)
        if payment is None:  # the first reversal of an unseen original leaves the tombstone
            claim = None if key in tombstones else REVERSED_FIRST
            tombstones.add(key)
            return Outcome("00" if self.advice else "25", claim=claim)
        if not self._names(payment):
            return Outcome("13")
        if payment.parts is not None:
            return self._reverse_split(payment, allocations, work)
        target = payment.amount - max(self.kept, 0)
        delta = target - payment.reversed_amount
        if delta > 0 and payment.biller_payment_id and target < payment.amount and not self.advice:
            return Outcome("12")  # an online biller reverses whole payments only (README)
        if delta > 0:
            if payment.biller_payment_id:  # an online payment: the biller is told too
                partial = target < payment.amount
                work.told.append(Reversed(payment.biller_code, payment.biller_payment_id, partial))
            _restore(payment, allocations.get(payment.id, []), target, work)
            postings = _postings(payment, delta, target, self.business_day)
            work.postings.extend(postings)
            if acc.is_wallet(payment.debit_account):
                back = sum(
                    a for p in postings for code, a in p.legs if code == payment.debit_account
                )
                work.wallets_back[payment.debit_account] = (
                    work.wallets_back.get(payment.debit_account, 0) - back
                )
            payment.reversed_amount = target
            work.reversed[payment.id] = target
        return Outcome("00", {"payment_id": payment.id})

    def _reverse_split(self, head: _Payment, allocations: dict, work: _Work) -> Outcome:
        """A payer-code split (switch/ledger/splits.py), reversed as one payment: the
        reversed amount comes off the parts newest debt first (the last AL entry first),
        each part as a payment of its own (its debts reopened, its journal row, an online
        part's biller told), and one journal row of the acquirer's on the head."""
        parts = head.parts or []
        target = head.amount - max(self.kept, 0)
        delta = target - head.reversed_amount
        if delta <= 0:
            return Outcome("00", {"payment_id": head.id})
        targets = _part_targets(parts, target)
        partial_online = any(
            p.biller_payment_id and t < p.amount and t > p.reversed_amount
            for p, t in zip(parts, targets, strict=True)
        )
        if partial_online and not self.advice:
            return Outcome("12")  # an online biller reverses whole payments only (README)
        back: list[tuple[_Payment, int]] = []
        for part, part_target in zip(parts, targets, strict=True):
            moved = part_target - part.reversed_amount
            if moved <= 0:
                continue
            if part.biller_payment_id:
                partial = part_target < part.amount
                work.told.append(Reversed(part.biller_code, part.biller_payment_id, partial))
            _restore(part, allocations.get(part.id, []), part_target, work)
            back.append((part, moved))
            part.reversed_amount = part_target
            work.reversed[part.id] = part_target
        postings = _split_postings(head, back, delta, target, self.business_day)
        work.postings.extend(postings)
        if acc.is_wallet(head.debit_account):
            refund = sum(a for p in postings for code, a in p.legs if code == head.debit_account)
            wallets = work.wallets_back
            wallets[head.debit_account] = wallets.get(head.debit_account, 0) - refund
        head.reversed_amount = target
        work.reversed[head.id] = target
        return Outcome("00", {"payment_id": head.id})

    def _names(self, payment: _Payment) -> bool:
        """Whether DE 4, DE 49 and DE 95 fit the original payment: a reversal that does
        not is refused (13) rather than taken as a full reversal of another amount."""
        return (
            self.amount in (None, payment.amount)
            and self.currency in (None, payment.currency)
            and self.kept <= payment.amount
        )


@dataclass
class _Payment:
    id: int
    acquirer_id: str
    biller_code: str
    account: str
    debit_account: str  # what the payment debited: the acquirer's receivable or a wallet
    amount: int
    fee: int
    currency: str
    reversed_amount: int
    biller_payment_id: str | None = None  # an online payment's id at its biller
    fee_payer: str = "payer"
    parts: list[_Payment] | None = None  # a payer-code split's head: its parts, in AL order

    @classmethod
    def of(cls, row: Any, debit_account: str, parts: list[_Payment] | None = None) -> _Payment:
        """A payments row as read (``debit_account``: what it debited)."""
        return cls(
            row.id, row.acquirer_id, row.biller_code, row.account, debit_account, row.amount,
            row.fee, row.currency, row.reversed_amount, row.biller_payment_id, row.fee_payer,
            parts,
        )  # fmt: skip


@dataclass
class _Allocation:
    debt_id: int
    amount: int
    reversed_amount: int


class _Work:
    """What a batch of reversals writes, gathered in memory first."""

    def __init__(self) -> None:
        self.reversed: dict[int, int] = {}  # payment id -> new reversed amount
        self.debts_back: dict[int, int] = {}  # debt id -> amount reopened
        self.allocations: dict[tuple[int, int], int] = {}  # (payment, debt) -> reversed
        self.postings: list[Posting] = []
        self.wallets_back: dict[str, int] = {}  # wallet account -> funds returned
        self.told: list[Reversed] = []  # online payments' reversals for their billers

    def write(self, conn: Connection, now: datetime, writes: Writes) -> None:
        """One update per table for the whole batch, into the stage's ``writes``."""
        back = list(self.debts_back.items())
        writes.update(_d.amount_open, "amount_open + {new}", ("id",), back)
        allocations = [(p, debt, value) for (p, debt), value in self.allocations.items()]
        keys = ("payment_id", "debt_id")
        writes.update(_a.reversed_amount, "{new}", keys, allocations)
        writes.update(_p.reversed_amount, "{new}", ("id",), list(self.reversed.items()))
        spend_wallets(writes, self.wallets_back, +1)
        post_all(conn, self.postings, now, writes)
        tell_reversals(conn, self.told, now)


_a, _t, _p, _d = s.allocations.c, s.transactions.c, s.payments.c, s.debts.c
_j, _e = s.journal.c, s.entries.c
_ORIGINALS = (
    select(
        _t.acquirer_id,
        _t.terminal_id,
        _t.stan,
        _t.transmitted,
        _t.state,
        _p,
        _e.account_code,
    )
    .select_from(s.transactions)
    .outerjoin(s.payments, _p.id == _t.payment_id)
    .outerjoin(s.journal, (_j.payment_id == _p.id) & (_j.kind == "payment"))
    .outerjoin(s.entries, (_e.journal_id == _j.id) & (_e.amount > 0))
    .where(
        _t.stan.in_(bindparam("stans", expanding=True)),
        _t.transmitted.in_(bindparam("times", expanding=True)),
    )
    # Every batch locks identities in key order: a reversal of a payment holds its row.
    .order_by(_t.stan, _t.transmitted, _t.acquirer_id, _t.terminal_id)
    .with_for_update(of=s.transactions)
)
_ALLOCATIONS = (
    select(_a.payment_id, _a.debt_id, _a.amount, _a.reversed_amount)
    .join(s.debts, _d.id == _a.debt_id)
    .where(_a.payment_id.in_(bindparam("ids", expanding=True)))
    .order_by(_d.period.desc(), _d.id.desc())
)


_PARTS = (
    select(_p)
    .where(_p.split_of.in_(bindparam("heads", expanding=True)), _p.id != _p.split_of)
    .order_by(_p.id)
)


def original_key(key: RequestKey) -> tuple[str, str, str, str]:
    return (key.acquirer_id, key.terminal_id, key.stan, key.transmitted)


def originals(
    conn: Connection, keys: Sequence[RequestKey]
) -> tuple[dict[tuple, _Payment], set[tuple]]:
    """What these keys name (by acquirer, terminal, STAN, DE 7), locked until commit: the
    payments, and the identities a reversal reached first (tombstones)."""
    if not keys:
        return {}, set()
    wanted = {original_key(k) for k in keys}
    params = {"stans": list({k.stan for k in keys}), "times": list({k.transmitted for k in keys})}
    found, tombstones = {}, set()
    for row in conn.execute(_ORIGINALS, params):
        key = (row.acquirer_id, row.terminal_id, row.stan, row.transmitted)
        if key not in wanted:
            continue
        if row.state == REVERSED_FIRST:
            tombstones.add(key)
            continue
        head = row.split_of is not None and row.split_of == row.id
        found[key] = _Payment.of(row, row.account_code, [] if head else None)
    _load_parts(conn, found)
    return found, tombstones


def _load_parts(conn: Connection, found: dict[tuple, _Payment]) -> None:
    """The parts of the split heads among ``found`` (one read, only when there are any);
    they debit what their head debits. (Not locked: only a reversal of their head
    changes them, and the head's transaction identity is locked.)"""
    heads = {p.id: p for p in found.values() if p.parts is not None}
    if not heads:
        return
    for row in conn.execute(_PARTS, {"heads": list(heads)}):
        head = heads[row.split_of]
        head.parts.append(_Payment.of(row, head.debit_account))  # type: ignore[union-attr]


def payment_ids(payments: Iterable[_Payment]) -> set[int]:
    """The ids of these payments and of the parts of the splits among them."""
    ids = set()
    for p in payments:
        ids.add(p.id)
        ids.update(part.id for part in p.parts or ())
    return ids


def accounts_of(payment: _Payment) -> list[tuple[str, str]]:
    """The accounts a payment paid: its own, or a split's parts'."""
    if payment.parts is not None:
        return [(p.biller_code, p.account) for p in payment.parts]
    return [(payment.biller_code, payment.account)]


def original_payments(conn: Connection, keys: Sequence[RequestKey]) -> dict[tuple, _Payment]:
    """The payments these keys name, locked until commit (see ``originals``)."""
    return originals(conn, keys)[0]


def _allocations(conn: Connection, payment_ids: set[int]) -> dict[int, list[_Allocation]]:
    """Each payment's allocations, newest period first."""
    result: dict[int, list[_Allocation]] = {}
    if payment_ids:
        for row in conn.execute(_ALLOCATIONS, {"ids": list(payment_ids)}):
            result.setdefault(row.payment_id, []).append(
                _Allocation(row.debt_id, row.amount, row.reversed_amount)
            )
    return result


def allocated_debts(conn: Connection, payment_ids: set[int]) -> set[int]:
    """The debts these payments paid (a reversal may reopen any of them)."""
    return {a.debt_id for found in _allocations(conn, payment_ids).values() for a in found}


def _restore(payment: _Payment, allocations: list[_Allocation], target: int, work: _Work) -> None:
    """Give debts back what the reversal takes from them, newest period first.

    The part of a payment that never went to a debt (an advice's surplus) is
    taken back first; debts reopen only for what the payer no longer pays.
    """
    surplus = payment.amount - sum(a.amount for a in allocations)
    left = max(0, target - surplus) - max(0, payment.reversed_amount - surplus)
    for a in allocations:
        back = min(a.amount - a.reversed_amount, left)
        if back <= 0:
            continue
        a.reversed_amount += back
        work.debts_back[a.debt_id] = work.debts_back.get(a.debt_id, 0) + back
        work.allocations[(payment.id, a.debt_id)] = a.reversed_amount
        left -= back


def _part_targets(parts: list[_Payment], target: int) -> list[int]:
    """Each part's reversed amount for a split reversed up to ``target``: from the last
    part (the newest debts) back, each in full before the one before it."""
    left = target
    targets = [0] * len(parts)
    for i in range(len(parts) - 1, -1, -1):
        targets[i] = min(parts[i].amount, left)
        left -= targets[i]
    return targets


def _split_postings(
    head: _Payment, back: list[tuple[_Payment, int]], delta: int, target: int, day
) -> list[Posting]:  # type: ignore[no-untyped-def]
    """The head's reversal (the acquirer's, out of the clearing account) and each part's
    (no acquirer: its biller's payable back into the clearing account)."""
    clearing = acc.split_clearing(head.currency)
    common = (head.id, head.acquirer_id, head.currency, day)
    result = [Posting("reversal", *common, ((head.debit_account, -delta), (clearing, delta)))]
    if target == head.amount and head.fee:
        legs = ((head.debit_account, -head.fee), (acc.fee_income(head.currency), head.fee))
        result.append(Posting("fee_reversal", *common, legs))
    for part, moved in back:
        payable = acc.biller_payable(part.biller_code, part.currency)
        legs = ((clearing, -moved), (payable, moved))
        result.append(Posting("reversal", part.id, None, part.currency, day, legs))
        if part.fee and part.fee_payer == "biller" and part.reversed_amount == part.amount:
            legs = ((payable, -part.fee), (acc.fee_income(part.currency), part.fee))
            result.append(Posting("fee_reversal", part.id, None, part.currency, day, legs))
    return result


def _postings(payment: _Payment, delta: int, target: int, day) -> list[Posting]:  # type: ignore[no-untyped-def]
    """The reversal's row, and the fee's reversal once the payment is reversed in full.

    A partial reversal leaves the fee alone (the payment was made, if for less): the fee
    is reversed, whole, by the reversal that takes the payment back in full, whether it
    comes first or after partial ones. So a fee is either charged or reversed, never
    split, and no rounding of a share of it is needed."""
    receivable = payment.debit_account  # the wallet of an on-us card gets its money back
    if payment.biller_code:
        payable = acc.biller_payable(payment.biller_code, payment.currency)
    else:
        payable = acc.suspense(payment.currency)
    common = (payment.id, payment.acquirer_id, payment.currency, day)
    result = [Posting("reversal", *common, ((receivable, -delta), (payable, delta)))]
    if target == payment.amount and payment.fee:
        payer, fee = payment.fee_payer, payment.fee
        result.append(fee_posting("fee_reversal", payer, fee, receivable, payable, common))
    return result
