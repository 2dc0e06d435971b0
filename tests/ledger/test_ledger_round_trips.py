"""How many statements a ledger batch sends: each is a round trip the whole batch waits for.

At one request in flight per terminal a batch holds a handful of orders, so every
statement a batch gains is paid in full by each request in it: the issue 8 changes
cost ``make bench`` about a fifth of its rate that way (docs/benchmarks.md). These
tests pin the count of one batch of payments and of one batch mixing payments and a
reversal of the same account (which runs in three stages), so that a change adding a
round trip fails here rather than in a benchmark months later. On PostgreSQL the
counts are exact; SQLite runs each write as its own statement (in process, no round
trip), so there only the independence from the batch's size is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import count

from sqlalchemy import Engine, event, func, select

from routing.billers import Accepted
from switch.ledger import online
from switch.ledger import schema as s
from switch.ledger.fees import BILLER, FeeRule, FeeRules
from switch.ledger.orders import Order
from switch.ledger.postings import Recorded, record_batch
from tests.ledger.ledger_support import (
    DAY,
    NOW,
    ONLINE,
    add_online_biller,
    assert_invariants,
    billers,
    payment,
    reversal,
)

UTIL = "UTIL01"

# A batch of payments of accounts with open debts (PostgreSQL):
# 1. the business day and the debts, locked in one statement (locks.py)
# 2. the open debts read for the decisions (payments.py)
# 3. the payments' and journal rows' ids, drawn together (sql.next_ids_of)
# 4. every row of the stage, request rows and identities included (sql.Writes)
PAYMENTS = 4
# [payment, reversal of an earlier payment of that account, payment]: three stages
# (the second payment must see the debt the reversal reopened, postings._stages).
# Locks: the originals, their allocations, day and debts (3); each payment stage as
# above less the lock (3 each); the reversal stage: originals, allocations, journal
# ids, its rows (4).
MIXED = 3 + 3 + 4 + 3
# A batch of payments an online biller accepted (PostgreSQL): their settle rows taken
# (locked and deleted) in one statement, then a stage as for any payment: the day and
# the payable accounts locked, the ids drawn, the writes (switch/ledger/online.py).
ONLINE_PAYMENTS = 1 + 3
_PIDS = count(1)


def _count(ledger: Engine, orders: Sequence[Order]) -> tuple[int, list[Recorded]]:
    seen: list[str] = []

    def _seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    with ledger.connect() as conn:
        tx = conn.begin()
        event.listen(ledger, "before_cursor_execute", _seen)
        try:
            recorded = record_batch(conn, orders, NOW, look_up=False, clock_day=DAY)
        finally:
            event.remove(ledger, "before_cursor_execute", _seen)
        tx.commit()
    return len([x for x in seen if not x.startswith("BEGIN")]), recorded


def _payments(ledger: Engine, n: int) -> list[Order]:
    util = billers(ledger)[UTIL]
    return [payment(util, "1000002", 10) for _ in range(n)]


# Fees of both payers: their journal rows and entries go into the payments' own inserts
# (their ids drawn with the payments'), so a batch with fees costs what one without does.
FEES = FeeRules(
    [
        FeeRule(1, UTIL, "ATM", None, percent_bp=100, min_fee=50),
        FeeRule(2, UTIL, None, None, fixed=10, payer=BILLER),
    ]
)


def _with_fees(ledger: Engine, n: int) -> list[Order]:
    util = billers(ledger)[UTIL]
    return [
        payment(util, "1000002", 10, fees=FEES, channel="ATM" if i % 2 else "POS") for i in range(n)
    ]


def _mixed(ledger: Engine, extra: int) -> list[Order]:
    util = billers(ledger)[UTIL]
    earlier = payment(util, "1000002", 7)
    _count(ledger, [earlier])
    return [
        payment(util, "1000002", 10),
        reversal(earlier),
        *(payment(util, "1000002", 10) for _ in range(1 + extra)),
    ]


def _postgres(ledger: Engine) -> bool:
    return ledger.dialect.name == "postgresql"


def test_a_batch_of_payments_costs_a_fixed_few_statements(ledger: Engine) -> None:
    _count(ledger, _payments(ledger, 1))  # the day's row, accounts known to this process
    few, answers = _count(ledger, _payments(ledger, 2))
    many, more = _count(ledger, _payments(ledger, 30))
    assert {r.code for r in answers + more} == {"00"}
    assert few == many
    if _postgres(ledger):
        assert many == PAYMENTS
    with ledger.connect() as conn:
        assert_invariants(conn)


def test_fees_cost_a_batch_no_statement(ledger: Engine) -> None:
    _count(ledger, _with_fees(ledger, 2))  # the day's row, the fee income account known
    few, answers = _count(ledger, _with_fees(ledger, 2))
    many, more = _count(ledger, _with_fees(ledger, 30))
    assert {r.code for r in answers + more} == {"00"}
    assert few == many
    if _postgres(ledger):
        assert many == PAYMENTS
    with ledger.connect() as conn:
        assert_invariants(conn)
        kinds = conn.exec_driver_sql("SELECT count(*) FROM journal WHERE kind = 'fee'").scalar()
        assert kinds == 2 + 2 + 30


def test_a_batch_with_a_reversal_between_payments_of_its_account(ledger: Engine) -> None:
    _count(ledger, _payments(ledger, 1))
    few, answers = _count(ledger, _mixed(ledger, 0))
    many, more = _count(ledger, _mixed(ledger, 20))
    assert {r.code for r in answers + more} == {"00"}
    assert few == many
    if _postgres(ledger):
        assert many == MIXED
    with ledger.connect() as conn:
        assert_invariants(conn)


def _online(ledger: Engine, n: int) -> list[Order]:
    """``n`` accepted online payments, their settle rows armed as the intents would."""
    biller = billers(ledger).get(ONLINE) or add_online_biller(ledger)
    orders = []
    for _ in range(n):
        order = payment(biller, f"METER-{next(_PIDS)}", 500, cls=online.OnlinePaymentOrder)  # type: ignore[arg-type]
        pid = f"P-{order.key.stan}-{next(_PIDS)}"
        orders.append(replace(order, biller_payment_id=pid, accepted=Accepted("REF-" + pid)))
    with ledger.begin() as conn:
        online.arm(conn, [online.Intent(ONLINE, o.biller_payment_id, 15) for o in orders], NOW)
    return orders


def test_a_batch_of_online_payments_costs_a_fixed_few_statements(ledger: Engine) -> None:
    _count(ledger, _online(ledger, 1))
    few, answers = _count(ledger, _online(ledger, 2))
    many, more = _count(ledger, _online(ledger, 30))
    assert {r.code for r in answers + more} == {"00"}
    assert few == many
    if _postgres(ledger):
        assert many == ONLINE_PAYMENTS
    with ledger.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.outbox)).scalar() == 0
        assert_invariants(conn)
