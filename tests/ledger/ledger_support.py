"""Helpers for the ledger tests: a seeded database, order builders, a writer harness, invariants.

Everything here talks to the ledger layer directly (no reactor, no sockets). The
writer's ``call_from_thread`` is replaced by a function that runs the callback
at once, under a lock: that lock plays the part of the reactor thread, so a
Deferred is never touched by two threads at the same time.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select
from twisted.python.failure import Failure

from switch import demo
from switch.cardholder import Hasher
from switch.ledger import accounts as acc
from switch.ledger import queries
from switch.ledger import schema as s
from switch.ledger.accounts import ensure_accounts
from switch.ledger.database import make_engine, migrate
from switch.ledger.fees import PAYER, FeeRule, FeeRules
from switch.ledger.postings import (
    Order,
    Outcome,
    PaymentOrder,
    Recorded,
    RequestKey,
    ReversalOrder,
    record,
)
from switch.ledger.reference import Biller, load_reference
from switch.ledger.writer import LedgerWriter

WAIT = 60.0  # seconds: the bound of every wait on a writer (never reached when all is well)

HASHER = Hasher(b"ledger-tests-hash-key-0123456789")
DAY = date(2026, 11, 22)
NEXT_DAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
ACQ = "100001"
HOST_ACQ = "200002"
ATM = "ATM00001"
CUR = "944"
TRANSMITTED = "1122101500"

# Billers the demo data lacks: one with a fee (a fee rule: fixed, paid by the payer),
# one that forbids partial payment, one that allows overpayment. Each has one customer
# with one debt.
EXTRA_BILLERS = [
    ("FEE01", "Fee Biller", True, False, 150, "F1", 10000),
    ("FULL01", "Full Amount Biller", False, False, 0, "U1", 5000),
    ("OVER01", "Overpay Biller", True, True, 0, "O1", 3000),
]


# The fee rules open_ledger stores, as the pipeline's snapshot would hold them: orders
# built by ``payment`` are priced with them.
TEST_FEES = FeeRules(
    FeeRule(i, code, None, None, fixed=fee)
    for i, (code, _, _, _, fee, _, _) in enumerate(EXTRA_BILLERS, 1)
    if fee
)


def open_ledger(url: str) -> Engine:
    """A migrated database with the demo data, the extra billers and every account."""
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        demo.load_demo(conn)
        for code, name, partial, overpay, fee, account, amount in EXTRA_BILLERS:
            conn.execute(
                insert(s.billers).values(
                    code=code,
                    name=name,
                    kind="held",
                    currency=CUR,
                    min_amount=1,
                    max_amount=None,
                    partial_allowed=partial,
                    overpay_allowed=overpay,
                    fee_fixed=0,
                    settlement_account=None,
                    status="active",
                )
            )
            if fee:
                conn.execute(
                    insert(s.fee_rules).values(
                        biller_code=code, fixed=fee, payer=PAYER, created_at=NOW
                    )
                )
            conn.execute(
                insert(s.customers).values(biller_code=code, account=account, name="Test T.")
            )
            conn.execute(
                insert(s.debts).values(
                    biller_code=code,
                    account=account,
                    period="202611",
                    invoice=None,
                    amount_original=amount,
                    amount_open=amount,
                )
            )
        ensure_accounts(conn)
    return engine


def billers(engine: Engine) -> dict[str, Biller]:
    with engine.connect() as conn:
        return load_reference(conn).billers


ONLINE = "ONL01"  # an online biller (its payments are OnlinePaymentOrders)


def add_online_biller(engine: Engine) -> Biller:
    """The online biller ``ONLINE`` (no endpoint: the ledger needs none)."""
    with engine.begin() as conn:
        conn.execute(
            insert(s.billers).values(
                code=ONLINE, name="Phone", kind="online", currency=CUR, min_amount=1,
                max_amount=None, partial_allowed=True, overpay_allowed=False, fee_fixed=0,
                settlement_account=None, status="active",
            )
        )  # fmt: skip
        ensure_accounts(conn)
    return billers(engine)[ONLINE]


# ---------------------------------------------------------------- orders

_stans = itertools.count(1)


def next_stan() -> str:
    return f"{next(_stans) % 999999 + 1:06d}"


def respond(outcome: Outcome) -> dict[str, str]:
    """A response as the pipeline would build it: DE 39 and the facts, as strings."""
    out = {"39": outcome.code}
    out.update({k: str(v) for k, v in sorted(outcome.facts.items())})
    return out


def payment(
    biller: Biller | None,
    account: str,
    amount: int,
    *,
    stan: str | None = None,
    period: str | None = None,
    advice: bool = False,
    acquirer: str = ACQ,
    terminal: str = ATM,
    transmitted: str = TRANSMITTED,
    currency: str = CUR,
    day: date = DAY,
    biller_code: str | None = None,
    cls: type[PaymentOrder] = PaymentOrder,
    fees: FeeRules = TEST_FEES,
    channel: str = "ATM",
) -> PaymentOrder:
    """A 0200 (or 0220 advice) whose request hash is computed from its content, its fee
    priced with ``fees`` as the pipeline would."""
    mti = "0220" if advice else "0200"
    stan = stan or next_stan()
    code = biller.code if biller else (biller_code or "NOSUCH")
    fields = {
        "t": mti,
        "3": "500000",
        "4": f"{amount:012d}",
        "7": transmitted,
        "11": stan,
        "32": acquirer,
        "41": terminal,
        "48": f"BL{len(code):03d}{code}AC{len(account):03d}{account}",
        "49": currency,
    }
    if period:
        fields["48"] += f"PE006{period}"
    fee = fees.price(biller.code, channel, acquirer, amount) if biller else None
    return cls(
        key=RequestKey(acquirer, terminal, stan, transmitted, mti),
        request_hash=HASHER.request(mti, fields),
        respond=respond,
        business_day=day,
        biller=biller,
        account=account,
        period=period,
        amount=amount,
        currency=currency,
        advice=advice,
        channel=channel,
        rrn=f"R{stan}",
        fee=fee.amount if fee else 0,
        fee_payer=fee.payer if fee else PAYER,
    )


def reversal(
    original: PaymentOrder | RequestKey,
    kept: int = 0,
    *,
    advice: bool = False,
    stan: str | None = None,
    transmitted: str = "1122102000",
    day: date = DAY,
    amount: int | None = None,
    currency: str | None = None,
) -> ReversalOrder:
    """A 0400 (or 0420) naming ``original``; ``kept`` is DE 95's amount (0: full reversal).

    DE 4 and DE 49 are the original's (a PaymentOrder) unless given; for an original
    named by its key alone they are left out (not compared) unless given."""
    okey = original.key if isinstance(original, PaymentOrder) else original
    if isinstance(original, PaymentOrder):
        amount = original.amount if amount is None else amount
        currency = currency or original.currency
    mti = "0420" if advice else "0400"
    stan = stan or next_stan()
    fields = {
        "t": mti,
        "4": "" if amount is None else f"{amount:012d}",
        "49": currency or "",
        "7": transmitted,
        "11": stan,
        "32": okey.acquirer_id,
        "41": okey.terminal_id,
        "90": f"{okey.mti}{okey.stan}{okey.transmitted}{okey.acquirer_id:0>11}{0:011d}",
        "95": f"{kept:012d}{0:030d}",
    }
    return ReversalOrder(
        key=RequestKey(okey.acquirer_id, okey.terminal_id, stan, transmitted, mti),
        request_hash=HASHER.request(mti, fields),
        respond=respond,
        business_day=day,
        original=okey,
        kept=kept,
        advice=advice,
        amount=amount,
        currency=currency,
    )


def record_one(engine: Engine, order: Order, now: datetime = NOW) -> Recorded:
    """``postings.record`` in a transaction of its own, as the writer would."""
    with engine.begin() as conn:
        return record(conn, order, now)


# ---------------------------------------------------------------- reading the database


def count(conn: Connection, table: Any, *where: Any) -> int:
    return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def debt_open(conn: Connection, biller_code: str, account: str, period: str) -> int:
    d = s.debts.c
    return conn.execute(
        select(d.amount_open).where(
            d.biller_code == biller_code, d.account == account, d.period == period
        )
    ).scalar_one()


def journal_rows(conn: Connection, payment_id: int | None = None) -> list[tuple[str, int]]:
    """``(kind, amount)`` of the journal rows (of one payment), in id order."""
    j = s.journal.c
    query = select(j.kind, j.amount).order_by(j.id)
    if payment_id is not None:
        query = query.where(j.payment_id == payment_id)
    return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]


def request_row(conn: Connection, key: RequestKey) -> Any:
    r = s.requests.c
    return conn.execute(
        select(s.requests).where(
            r.acquirer_id == key.acquirer_id,
            r.terminal_id == key.terminal_id,
            r.stan == key.stan,
            r.transmitted == key.transmitted,
            r.mti == key.mti,
        )
    ).one_or_none()


def money_rows(conn: Connection) -> dict[str, int]:
    """How many rows each money table holds (requests excluded)."""
    tables = (s.payments, s.allocations, s.journal, s.entries)
    return {t.name: count(conn, t) for t in tables}


def snapshot(conn: Connection) -> dict[str, Any]:
    """Everything a failed or duplicate order must leave untouched."""
    d = s.debts.c
    return {
        **money_rows(conn),
        "requests": count(conn, s.requests),
        "debts": [tuple(r) for r in conn.execute(select(d.id, d.amount_open).order_by(d.id))],
        "accounts": count(conn, s.accounts),
    }


RECV = acc.acquirer_receivable(ACQ, CUR)
FEE_INCOME = acc.fee_income(CUR)
SUSPENSE = acc.suspense(CUR)


def payable(biller_code: str) -> str:
    return acc.biller_payable(biller_code, CUR)


# ---------------------------------------------------------------- invariants


def assert_invariants(conn: Connection) -> None:
    """The invariants of design.md, checked from the tables themselves."""
    j, e, p, r, d, a = (
        s.journal.c,
        s.entries.c,
        s.payments.c,
        s.requests.c,
        s.debts.c,
        s.allocations.c,
    )

    # Entries of every journal row sum to zero; every row has entries; its amount is the movement.
    assert queries.unbalanced_journal_rows(conn) == []
    per_journal = conn.execute(
        select(
            j.id,
            j.amount,
            func.count(e.id),
            func.coalesce(func.sum(e.amount), 0),
            func.coalesce(func.sum(e.amount).filter(e.amount > 0), 0),
        )
        .select_from(s.journal.outerjoin(s.entries, e.journal_id == j.id))
        .group_by(j.id, j.amount)
    ).all()
    for journal_id, amount, n, total, debit in per_journal:
        assert n >= 2, f"journal {journal_id} has {n} entries"
        assert total == 0, f"journal {journal_id} entries sum to {total}"
        assert amount == debit > 0, f"journal {journal_id}: amount {amount}, debits {debit}"

    # A request key appears once, and no request is left half done.
    dupes = conn.execute(
        select(r.acquirer_id, r.terminal_id, r.stan, r.transmitted, r.mti)
        .group_by(r.acquirer_id, r.terminal_id, r.stan, r.transmitted, r.mti)
        .having(func.count() > 1)
    ).all()
    assert dupes == []
    assert count(conn, s.requests, r.response_code == "--") == 0

    # No debt negative; each debt's open amount is what its allocations left.
    allocated = dict(
        conn.execute(
            select(a.debt_id, func.sum(a.amount - a.reversed_amount)).group_by(a.debt_id)
        ).all()
    )
    for debt_id, original, open_amount in conn.execute(
        select(d.id, d.amount_original, d.amount_open)
    ):
        assert open_amount >= 0, f"debt {debt_id} is negative: {open_amount}"
        assert open_amount == original - allocated.get(debt_id, 0), f"debt {debt_id}"
    assert count(conn, s.allocations, a.reversed_amount > a.amount) == 0
    assert count(conn, s.allocations, a.reversed_amount < 0) == 0

    # Every approved payment has its journal row; every payment belongs to one approval.
    approved = dict(
        conn.execute(
            select(r.payment_id, func.count())
            .where(r.response_code == "00", r.mti.in_(("0200", "0220")), r.payment_id.is_not(None))
            .group_by(r.payment_id)
        ).all()
    )
    kinds: dict[tuple[int, str], list[int]] = {}
    for payment_id, kind, amount in conn.execute(select(j.payment_id, j.kind, j.amount)):
        kinds.setdefault((payment_id, kind), []).append(amount)
    rows = conn.execute(
        select(p.id, p.amount, p.fee, p.reversed_amount, p.split_of, p.fee_payer)
    ).all()
    # A payer-code split's parts (switch/ledger/splits.py) belong to its head: no request
    # or identity rows of their own, no payer's fee (the head has the parts' payer fees);
    # a part's own fee is its biller's. They add up to their head.
    parts = [row for row in rows if row.split_of is not None and row.split_of != row.id]
    payments = [row for row in rows if row.split_of is None or row.split_of == row.id]
    assert set(approved) == {row.id for row in payments}
    assert all(n == 1 for n in approved.values())
    for payment_id, amount, fee, reversed_amount, _, _ in rows:
        assert kinds.get((payment_id, "payment")) == [amount], f"payment {payment_id}"
        assert kinds.get((payment_id, "fee"), []) == ([fee] if fee else []), f"fee {payment_id}"
        assert sum(kinds.get((payment_id, "reversal"), [])) == reversed_amount
        assert 0 <= reversed_amount <= amount
        fee_back = kinds.get((payment_id, "fee_reversal"), [])
        assert fee_back == ([fee] if fee and reversed_amount == amount else [])
    heads = {row.id: row for row in payments if row.split_of is not None}
    sums: dict[int, list[int]] = {head: [0, 0] for head in heads}
    for part in parts:
        assert part.fee == 0 or part.fee_payer == "biller", f"part {part.id} has a payer fee"
        sums[part.split_of][0] += part.amount
        sums[part.split_of][1] += part.reversed_amount
    for head_id, (amount, reversed_amount) in sums.items():
        head = heads[head_id]
        assert (amount, reversed_amount) == (head.amount, head.reversed_amount), f"split {head_id}"

    # A wallet's funds (kept with its card) are minus the sum of its entries.
    by_account = dict(
        conn.execute(select(e.account_code, func.sum(e.amount)).group_by(e.account_code)).all()
    )
    for wallet, funds in conn.execute(select(s.cards.c.wallet_account, s.cards.c.funds)):
        assert funds == -by_account.get(wallet, 0), f"wallet {wallet}: funds {funds}"
    # Every payment has its transaction identity; a tombstone has no payment (identity.py).
    t = s.transactions.c
    paid = conn.execute(select(t.payment_id).where(t.state == "paid")).scalars().all()
    assert sorted(paid) == sorted(row.id for row in payments)
    assert count(conn, s.transactions, t.state == "reversed_first", t.payment_id.is_not(None)) == 0

    # The balances are derived from the entries and the ledger as a whole balances.
    balances = queries.balances(conn)
    assert sum(balances.values()) == 0


# ---------------------------------------------------------------- the writer


class Result:
    """What one submitted order's Deferred fired with, waited for with a bound."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: Any = None

    def set(self, value: Any) -> None:
        self._value = value.value if isinstance(value, Failure) else value
        self._event.set()
        return None  # consume a failure: it is checked by the test, not logged as unhandled

    def done(self) -> bool:
        return self._event.is_set()

    def get(self, timeout: float = WAIT) -> Any:
        """The Recorded, or the exception (SystemFailure, Overloaded) it failed with."""
        assert self._event.wait(timeout), "the ledger writer did not answer in time"
        return self._value


class _DelayedCall:
    """A stand-in for ``reactor.callLater``'s result: a timer thread, run as the reactor."""

    def __init__(self, node: Node, delay: float, f: Any, args: tuple[Any, ...]) -> None:
        self._timer = threading.Timer(delay, node._call_from_thread, (self._fire, f, *args))
        self._timer.daemon = True
        self._pending = True
        self._timer.start()

    def _fire(self, f: Any, *args: Any) -> None:
        if self._pending:
            self._pending = False
            f(*args)

    def active(self) -> bool:
        return self._pending

    def cancel(self) -> None:
        self._pending = False
        self._timer.cancel()


class Node:
    """One switch node's ledger writer, with stand-ins for ``reactor.callFromThread`` and
    ``reactor.callLater`` (the deadline timers)."""

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        self.engine = engine
        self._reactor = threading.Lock()
        self.writer = LedgerWriter(
            engine, self._call_from_thread, call_later=self._call_later, **kwargs
        )
        self.started = False
        self.stopped = False

    def _call_from_thread(self, f: Any, *args: Any) -> None:
        with self._reactor:  # runs the callback directly, one "reactor" at a time
            f(*args)

    def _call_later(self, delay: float, f: Any, *args: Any) -> _DelayedCall:
        return _DelayedCall(self, delay, f, args)

    def submit(self, order: Order) -> Result:
        result = Result()
        with self._reactor:
            self.writer.submit(order).addBoth(result.set)
        return result

    def start(self) -> None:
        self.writer.start()
        self.started = True

    def stop(self, timeout: float = WAIT) -> None:
        """``writer.stop()`` (which drains the queue), waited for with a bound."""
        self.stopped = True
        stopper = threading.Thread(target=self.writer.stop, daemon=True)
        stopper.start()
        stopper.join(timeout)
        assert not stopper.is_alive(), "the ledger writer did not stop in time"


def results(items: Iterable[Result]) -> list[Any]:
    return [item.get() for item in items]
