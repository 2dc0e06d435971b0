"""Bill payments (0200) and payment advices (0220) recorded in the ledger.

Billers whose debts the switch holds (held) are decided against those debts;
outline billers' payments skip the debts (any account, any amount within the
limits the pipeline checked) and post the same journal entries.

A batch of payments costs a fixed handful of statements: one locking read of
their open debts (and of the customers without any), one draw of ids, then its
inserts and updates, gathered into the stage's one write (``sql.Writes``).
Decisions are made in order, in memory, so two payments of one account in the
same batch see each other.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select, tuple_

from switch.ledger import accounts as acc
from switch.ledger import schema as s
from switch.ledger.amount_rules import due_violation
from switch.ledger.fees import BILLER, PAYER
from switch.ledger.journal import Posting, post_all
from switch.ledger.orders import PAID, BatchOrder, Order, Outcome
from switch.ledger.reference import Biller
from switch.ledger.sql import Writes, bind, for_update, in_list, next_ids_of

AccountKey = tuple[str, str]  # (biller code, account)


def allocate(open_debts: Sequence[tuple[int, int]], amount: int) -> list[tuple[int, int]]:
    """Split ``amount`` over ``(debt_id, open)`` oldest first; returns ``(debt_id, paid)``."""
    result = []
    left = amount
    for debt_id, open_amount in open_debts:
        if left <= 0:
            break
        paid = min(open_amount, left)
        if paid > 0:
            result.append((debt_id, paid))
            left -= paid
    return result


@dataclass
class PaymentOrder(BatchOrder):
    """One payment or advice.

    An advice cannot be declined for a business reason: the acquirer already
    took the money. It pays what is open, oldest first; the rest stays on the
    biller's payable account (or in suspense for an unknown biller).

    ``fee`` was priced by the pipeline from the node's fee rules (switch/ledger/fees.py);
    ``fee_payer`` says who pays it: the payer on top of the amount, or the biller.
    """

    biller: Biller | None
    account: str
    period: str | None
    amount: int
    currency: str
    advice: bool
    channel: str
    rrn: str | None = None
    masked_pan: str | None = None
    pan_hash: str | None = None
    wallet: str | None = None  # an on-us card's wallet account pays instead of the acquirer
    fee: int = 0
    fee_payer: str = PAYER

    @property
    def account_key(self) -> AccountKey:
        return (self.biller.code if self.biller else "", self.account)

    @property
    def debts_held(self) -> bool:
        """Whether the switch holds this biller's debts: only then is the account looked
        up and the amount decided against what it owes (outline billers take any account,
        the amount checked against their limits before the ledger)."""
        return self.biller is not None and self.biller.debts_held

    @property
    def on_top(self) -> int:
        """What the payer pays beyond the amount: the fee, when the payer pays it."""
        return self.fee if self.fee_payer == PAYER else 0

    @property
    def biller_facts(self) -> tuple[str | None, ...]:
        """An online biller's payment id, reference, receipt and token (online.py)."""
        return (None, None, None, None)

    @classmethod
    def apply_batch(
        cls, conn: Connection, orders: Sequence[Order], now: datetime, writes: Writes
    ) -> list[Outcome]:
        payments: list[PaymentOrder] = list(orders)  # type: ignore[arg-type]
        keys = {p.account_key for p in payments if p.debts_held}
        debts = _open_debts(conn, keys)
        # An account with an open debt is known; only the others need a look-up.
        with_debts = {k for k, found in debts.items() if found}
        known = with_debts | _known_customers(conn, keys - with_debts)
        funds = _wallet_funds(conn, {p.wallet for p in payments if p.wallet})
        decisions = [_decide(p, known, debts, funds) for p in payments]
        approved = [(p, d) for p, d in zip(payments, decisions, strict=True) if d.code == "00"]
        _write(conn, approved, now, writes)
        return decisions


@dataclass
class _Funds:
    funds: int


@dataclass
class _Debt:
    id: int
    period: str
    open: int


_d = s.debts.c
# The batch's reads are plain SQL (see sql.py): the key lists are long, and expanding
# them is what a Core statement costs most. ``{keys}`` is ``sql.in_list``'s.
_KNOWN = "SELECT biller_code, account FROM customers WHERE (biller_code, account) IN ({keys})"
_OPEN = (
    "SELECT id, biller_code, account, period, amount_open FROM debts"
    " WHERE (biller_code, account) IN ({keys}) AND amount_open > 0"
    " ORDER BY period, id{lock}"
)
_WALLET_FUNDS = (
    "SELECT wallet_account, funds FROM cards WHERE wallet_account IN ({keys})"
    " ORDER BY wallet_account{lock}"  # the lock order (locks.py)
)
_OPEN_TOTALS = (
    select(_d.biller_code, _d.account, func.sum(_d.amount_open))
    .where(tuple_(_d.biller_code, _d.account).in_(bindparam("keys", expanding=True)))
    .group_by(_d.biller_code, _d.account)
)


def _known_customers(conn: Connection, keys: set[AccountKey]) -> set[AccountKey]:
    if not keys:
        return set()
    in_keys, params = in_list(conn, keys)
    return {(b, a) for b, a in conn.exec_driver_sql(_KNOWN.format(keys=in_keys), params)}


def open_amounts(conn: Connection, keys: set[AccountKey]) -> dict[AccountKey, int]:
    """What each account owes in all, without locking (a planning read)."""
    if not keys:
        return {}
    return dict(
        ((b, a), int(total)) for b, a, total in conn.execute(_OPEN_TOTALS, {"keys": list(keys)})
    )


def _open_debts(conn: Connection, keys: set[AccountKey]) -> dict[AccountKey, list[_Debt]]:
    """Open debts of the batch's accounts, oldest first, locked until commit."""
    result: dict[AccountKey, list[_Debt]] = {k: [] for k in keys}
    if not keys:
        return result
    in_keys, params = in_list(conn, keys)
    rows = conn.exec_driver_sql(_OPEN.format(keys=in_keys, lock=for_update(conn)), params)
    for debt_id, biller_code, account, period, amount_open in rows:
        result[(biller_code, account)].append(_Debt(debt_id, period, amount_open))
    return result


def _wallet_funds(conn: Connection, wallets: set[str]) -> dict[str, _Funds]:
    """What each wallet holds, the card row locked until commit. (Its PIN tries are not
    the ledger's business, nor on this row: the PIN step reserved a try in the
    ``pin_tries`` table before the HSM verified it and refused a blocked card there;
    see switch/security/tries.py. A blocked card's payment never reaches the ledger.)"""
    if not wallets:
        return {}
    in_keys, params = in_list(conn, wallets)
    rows = conn.exec_driver_sql(_WALLET_FUNDS.format(keys=in_keys, lock=for_update(conn)), params)
    return {w: _Funds(int(f)) for w, f in rows}


def _decide(p: PaymentOrder, known: set[AccountKey], debts: dict, funds: dict) -> Outcome:
    """Approve or decline against the open debts (and an on-us wallet's funds), consuming
    them in memory when approved."""
    if p.biller is not None and not p.debts_held:  # outline: no debts, no DU
        return _decide_funds(p, funds) or Outcome("00", _approved([]), claim=PAID)
    open_debts = [x for x in debts.get(p.account_key, []) if not p.period or x.period == p.period]
    due = sum(x.open for x in open_debts)
    if not p.advice:
        if p.account_key not in known:
            return Outcome("14")
        if due_violation(p.biller, p.amount, due):  # type: ignore[arg-type]
            return Outcome("13", {"due": due})
    declined = _decide_funds(p, funds)
    if declined:
        return declined
    paid = allocate([(x.id, x.open) for x in open_debts], p.amount)
    by_id = {x.id: x for x in open_debts}
    for debt_id, amount in paid:
        by_id[debt_id].open -= amount
    return Outcome("00", dict(_approved(paid), due=due - sum(a for _, a in paid)), claim=PAID)


def _decide_funds(p: PaymentOrder, funds: dict) -> Outcome | None:
    """An on-us card's wallet must hold the amount and a payer's fee (taken in memory); None
    when it pays (or no wallet pays). A blocked card never gets here: its PIN try was
    refused."""
    if not p.wallet:
        return None
    wallet = funds[p.wallet]
    if wallet.funds < p.amount + p.on_top:
        return Outcome("51")
    wallet.funds -= p.amount + p.on_top
    return None


def _approved(paid: list[tuple[int, int]]) -> dict:
    """An approval's facts: the debts paid, and the authorisation code (DE 38)."""
    return {"paid": paid, "auth_code": f"{secrets.randbelow(1_000_000):06d}"}


def _write(
    conn: Connection, approved: list[tuple[PaymentOrder, Outcome]], now: datetime, writes: Writes
) -> None:
    """The approved payments' rows, into ``writes`` (sent with the stage's request rows);
    their ids and their journal rows' ids drawn in one statement first."""
    if not approved:
        return
    n_postings = sum(2 if p.fee else 1 for p, _ in approved)
    ids, journal_ids = next_ids_of(conn, [(s.payments, len(approved)), (s.journal, n_postings)])
    for (_, outcome), payment_id in zip(approved, ids, strict=True):
        outcome.facts["payment_id"] = payment_id
    _insert_payments(conn, approved, now, writes)
    _reduce_debts(approved, writes)
    spend_wallets(writes, _spent(approved), -1)
    postings = [x for p, o in approved for x in _postings(conn, p, o)]
    post_all(conn, postings, now, writes, journal_ids)


def _spent(approved: list[tuple[PaymentOrder, Outcome]]) -> dict[str, int]:
    spent: dict[str, int] = {}
    for p, _ in approved:
        if p.wallet:
            spent[p.wallet] = spent.get(p.wallet, 0) + p.amount + p.on_top
    return spent


def spend_wallets(writes: Writes, amounts: dict[str, int], sign: int) -> None:
    """Move wallets' funds by ``sign * amount`` (one update for the batch)."""
    rows = [(wallet, sign * amount) for wallet, amount in amounts.items()]
    writes.update(s.cards.c.funds, "funds + {new}", ("wallet_account",), rows)


PAYMENT_COLUMNS = (
    "id",
    "acquirer_id",
    "terminal_id",
    "channel",
    "biller_code",
    "account",
    "amount",
    "fee",
    "fee_payer",
    "reversed_amount",
    "currency",
    "advice",
    "rrn",
    "auth_code",
    "masked_pan",
    "pan_hash",
    "business_day",
    "created_at",
    "biller_payment_id",
    "biller_ref",
    "receipt",
    "token",
)
_ALLOCATIONS = ("payment_id", "debt_id", "amount", "reversed_amount")


def _insert_payments(
    conn: Connection, approved: list[tuple[PaymentOrder, Outcome]], now: datetime, writes: Writes
) -> None:
    day = bind(conn, s.payments.c.business_day)
    at = bind(conn, s.payments.c.created_at)(now)
    rows = [
        (
            o.facts["payment_id"],
            p.key.acquirer_id,
            p.key.terminal_id,
            p.channel,
            p.biller.code if p.biller else "",
            p.account,
            p.amount,
            p.fee,
            p.fee_payer,
            0,
            p.currency,
            p.advice,
            p.rrn,
            o.facts["auth_code"],
            p.masked_pan,
            p.pan_hash,
            day(p.business_day),
            at,
            *p.biller_facts,
        )
        for p, o in approved
    ]
    writes.insert(s.payments, PAYMENT_COLUMNS, rows)


def _reduce_debts(approved: list[tuple[PaymentOrder, Outcome]], writes: Writes) -> None:
    allocations = [
        (o.facts["payment_id"], debt_id, amount, 0)
        for _, o in approved
        for debt_id, amount in o.facts["paid"]
    ]
    if not allocations:
        return
    paid_by_debt: dict[int, int] = {}
    for _, debt_id, amount, _ in allocations:
        paid_by_debt[debt_id] = paid_by_debt.get(debt_id, 0) + amount
    # One statement for every debt of the batch (SQLite: one executemany).
    rows = list(paid_by_debt.items())
    writes.update(s.debts.c.amount_open, "amount_open - {new}", ("id",), rows)
    writes.insert(s.allocations, _ALLOCATIONS, allocations)


def _postings(conn: Connection, p: PaymentOrder, o: Outcome) -> list[Posting]:
    receivable = p.wallet or acc.acquirer_receivable(p.key.acquirer_id, p.currency)
    if p.biller:
        payable = acc.biller_payable(p.biller.code, p.currency)
    else:  # an advice in suspense may be in a currency no biller uses
        payable = acc.suspense(p.currency)
        acc.ensure_account(conn, payable, "suspense", "switch", p.currency)
        acc.ensure_account(conn, receivable, "acquirer_receivable", p.key.acquirer_id, p.currency)
    common = (o.facts["payment_id"], p.key.acquirer_id, p.currency, p.business_day)
    result = [Posting("payment", *common, ((receivable, p.amount), (payable, -p.amount)))]
    if p.fee:
        result.append(fee_posting("fee", p.fee_payer, p.fee, receivable, payable, common))
    return result


def fee_posting(
    kind: str, payer: str, fee: int, receivable: str, payable: str, common: tuple
) -> Posting:
    """A fee's journal row (``fee``) or its reversal (``fee_reversal``, entries mirrored).

    The payer's fee is owed by whoever paid the amount (the acquirer's receivable, or an
    on-us wallet); the biller's is taken from its payable. Both go to the fee income. A
    biller-paid fee's row names no acquirer: the acquirer owes nothing for it, so its
    totals (0510) leave it out as they must.
    """
    payment_id, acquirer_id, currency, day = common
    debtor = payable if payer == BILLER else receivable
    sign = 1 if kind == "fee" else -1
    legs = ((debtor, sign * fee), (acc.fee_income(currency), -sign * fee))
    owner = None if payer == BILLER else acquirer_id
    return Posting(kind, payment_id, owner, currency, day, legs)
