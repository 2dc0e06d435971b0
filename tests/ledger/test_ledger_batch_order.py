"""A batch applied at once answers and writes exactly what its orders would one at a time,
in arrival order (issue 8 item 8): every response (DE 39, DU, which debts a payment paid),
the debts, payments, allocations, journal and request rows.

A property test over random batches, seeded (so a failure names its seed and replays):
payments with and without a period (DE 48 PE), of billers that allow partial payment or
want the exact amount, with a fee, allowing overpayment; advices; full and partial
reversals and reversal advices of payments in the batch (before or after them) or stored
by earlier batches, or of nothing; retransmissions. Twin databases get the same orders:
one as one ``record_batch``, the other one transaction per order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, select

from iso.bill_data import parse_bill_data
from switch.ledger import queries
from switch.ledger import schema as s
from switch.ledger.postings import Order, PaymentOrder, Recorded, record_batch
from tests.conftest import BACKENDS, postgres_schema_url
from tests.ledger.ledger_support import (
    NOW,
    assert_invariants,
    billers,
    open_ledger,
    payment,
    record_one,
    reversal,
)

PERIODS = ("202609", "202610", "202611")
ACCOUNTS = ("P1", "P2", "P3")
SEEDS = range(12)
BATCHES = 12  # per seed, on the same twin databases (later batches reverse earlier ones)


@pytest.fixture(params=BACKENDS)
def twins(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[Engine, Engine]]:  # type: ignore[no-untyped-def]
    """Two databases seeded alike: ``(batched, one_by_one)``."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / name}.db" for name in ("batched", "one_by_one")]
        schemas: list[Iterator[str]] = []
    else:
        schemas = [postgres_schema_url(), postgres_schema_url()]
        urls = [next(g) for g in schemas]
    engines = [open_ledger(url) for url in urls]
    for engine in engines:
        _seed(engine)
    try:
        yield engines[0], engines[1]
    finally:
        for engine in engines:
            engine.dispose()
        for g in schemas:
            g.close()


def _seed(engine: Engine) -> None:
    """Three customers of every test biller, each owing in three periods."""
    with engine.begin() as conn:
        for code in ("UTIL01", "FEE01", "FULL01", "OVER01"):
            for n, account in enumerate(ACCOUNTS):
                conn.execute(
                    insert(s.customers).values(biller_code=code, account=account, name="X")
                )
                conn.execute(
                    insert(s.debts),
                    [
                        {
                            "biller_code": code,
                            "account": account,
                            "period": period,
                            "invoice": None,
                            "amount_original": 1000 * (n + 1) * (p + 2),
                            "amount_open": 1000 * (n + 1) * (p + 2),
                        }
                        for p, period in enumerate(PERIODS)
                    ],
                )


class _Batches:
    """Random batches over what the databases hold (read from the one-by-one twin)."""

    def __init__(self, rng: random.Random, engine: Engine) -> None:
        self.rng = rng
        self.engine = engine
        self.billers = billers(engine)
        self.stored: list[PaymentOrder] = []  # payments of earlier batches, any outcome

    def batch(self) -> list[Order]:
        """Most orders of a batch are about two accounts: that is where order matters."""
        rng = self.rng
        every = [(code, account) for code in self.billers for account in ACCOUNTS]
        self.focus = rng.sample(every, 2)
        opened = self._open()
        kinds = [rng.random() < 0.6 for _ in range(rng.randint(1, 10))]  # True: a payment
        payments = [self._payment(opened) for k in kinds if k]
        pending = iter(payments)
        orders: list[Order] = []
        for is_payment in kinds:
            orders.append(next(pending) if is_payment else self._reversal(payments, orders))
            if rng.random() < 0.05:
                orders.append(rng.choice(orders))  # a retransmission within the batch
        self.stored.extend(payments)
        return orders

    def _open(self) -> dict[tuple[str, str, str], int]:
        d = s.debts.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(d.biller_code, d.account, d.period, d.amount_open))
            return {(b, a, p): amount for b, a, p, amount in rows}

    def _payment(self, opened: dict[tuple[str, str, str], int]) -> PaymentOrder:
        rng = self.rng
        code, account = rng.choice(self.focus)
        if rng.random() < 0.2:
            code, account = rng.choice(list(self.billers)), rng.choice(ACCOUNTS)
        if rng.random() < 0.05:
            account = "NOSUCH"
        period = rng.choice(PERIODS) if rng.random() < 0.5 else None
        due = sum(v for (b, a, p), v in opened.items() if (b, a) == (code, account))
        if period:
            due = opened.get((code, account, period), 0)
        amount = rng.choice(
            [due, due, max(1, due // 2), rng.randint(1, 3000), due + 500, rng.randint(1, 30000)]
        )
        advice = rng.random() < 0.15
        if advice and rng.random() < 0.2:  # an advice of a biller the switch does not know
            return payment(None, account, max(amount, 1), advice=True)
        return payment(self.billers[code], account, max(amount, 1), period=period, advice=advice)

    def _reversal(self, in_batch: list[PaymentOrder], before: list[Order]) -> Order:
        rng = self.rng
        pool = [*in_batch, *self.stored]
        earlier = [o for o in before if isinstance(o, PaymentOrder)]
        roll = rng.random()
        if not pool or roll < 0.05:  # an original nobody has seen
            original: PaymentOrder = payment(self.billers["UTIL01"], "P1", 100)
        elif in_batch and roll < 0.1:
            original = rng.choice(in_batch)  # maybe later in the batch than its reversal
        elif earlier and roll < 0.3:
            original = rng.choice(earlier)
        else:
            near = [p for p in self.stored if p.account_key in self.focus]
            original = rng.choice(near[-10:] if near and roll < 0.85 else pool[-30:])
        kept = 0 if rng.random() < 0.6 else rng.randint(1, original.amount + 100)
        return reversal(original, kept, advice=rng.random() < 0.3)


def _answer(recorded: Recorded) -> tuple[str, dict[str, Any]]:
    """The response without its random authorisation code."""
    response = {k: v for k, v in recorded.response.items() if k != "auth_code"}
    return recorded.code, response


def _names(conn: Connection) -> dict[int, tuple[str, ...]]:
    """Each payment id -> the request that made the payment. Ids (and receipt numbers,
    RN) are drawn stage by stage, so a batch may number its payments in another order
    than arrival; which request made which payment is what must be the same."""
    r = s.requests.c
    query = select(r.payment_id, r.acquirer_id, r.terminal_id, r.stan, r.transmitted, r.mti)
    return {row[0]: tuple(row[1:]) for row in conn.execute(query.where(r.payment_id.is_not(None)))}


def _named(answer: tuple[str, dict[str, Any]], conn: Connection) -> tuple[str, dict[str, Any]]:
    """The answer with its receipt number (RN, ``P`` + payment id) named by its request."""
    code, response = answer
    names = _names(conn)
    response = dict(response)
    if response.get("payment_id"):  # the test writer's own response form
        response["payment_id"] = names[int(response["payment_id"])]
    if "48" in response:
        tags = parse_bill_data(response["48"])
        if "RN" in tags:
            tags["RN"] = "/".join(names[int(tags["RN"][1:])])
        response["48"] = tags
    return code, response


def _state(conn: Connection) -> dict[str, Any]:
    """Everything the batch wrote, with payments named by the request that made them
    (ids depend on the order stages draw them in)."""
    names = _names(conn)
    d, a, j, e, r = (
        s.debts.c,
        s.allocations.c,
        s.journal.c,
        s.entries.c,
        s.requests.c,
    )
    entries: dict[int, list[tuple[str, int]]] = {}
    for jid, code, amount in conn.execute(select(e.journal_id, e.account_code, e.amount)):
        entries.setdefault(jid, []).append((code, amount))
    journal = sorted(
        (names.get(pid, ()), kind, amount, str(day), acq or "", sorted(entries[jid]))
        for jid, pid, kind, amount, day, acq in conn.execute(
            select(j.id, j.payment_id, j.kind, j.amount, j.business_day, j.acquirer_id)
        )
    )
    requests = sorted(
        (*row[:6], names.get(row.payment_id, ()), _named_response(row.response, names))
        for row in conn.execute(
            select(
                r.acquirer_id, r.terminal_id, r.stan, r.transmitted, r.mti, r.response_code,
                r.payment_id, r.response,
            )
        )
    )  # fmt: skip
    payment_columns = [c for c in s.payments.c if c.name not in ("auth_code", "created_at")]
    payments = conn.execute(select(*payment_columns)).all()
    allocations = conn.execute(select(a.payment_id, a.debt_id, a.amount, a.reversed_amount))
    return {
        "debts": conn.execute(select(d.id, d.amount_open).order_by(d.id)).all(),
        "payments": sorted((names[row[0]], *row[1:]) for row in payments),
        "allocations": sorted((names[row[0]], *row[1:]) for row in allocations),
        "journal": journal,
        "requests": requests,
        "balances": queries.balances(conn),
    }


def _named_response(response: str, names: dict[int, tuple[str, ...]]) -> str:
    """A stored response without its random authorisation code, its RN named."""
    fields = json.loads(response)
    fields.pop("auth_code", None)
    fields.pop("38", None)
    if fields.get("payment_id"):
        fields["payment_id"] = names[int(fields["payment_id"])]
    if "48" in fields:
        tags = parse_bill_data(fields["48"])
        if "RN" in tags:
            tags["RN"] = "/".join(names[int(tags["RN"][1:])])
        fields["48"] = tags
    return json.dumps(fields, sort_keys=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_batched_equals_one_at_a_time_in_arrival_order(
    twins: tuple[Engine, Engine], seed: int
) -> None:
    batched, one_by_one = twins
    batches = _Batches(random.Random(seed), one_by_one)
    for n in range(BATCHES):
        orders = batches.batch()
        with batched.begin() as conn:
            together = [_answer(x) for x in record_batch(conn, orders, NOW)]
        alone = [_answer(record_one(one_by_one, order)) for order in orders]
        with batched.connect() as a, one_by_one.connect() as b:
            together = [_named(x, a) for x in together]
            alone = [_named(x, b) for x in alone]
        where = f"seed {seed}, batch {n}: {[type(o).__name__[0] + o.key.stan for o in orders]}"
        for i, (got, want) in enumerate(zip(together, alone, strict=True)):
            assert got == want, f"{where}, order {i}"
        with batched.connect() as a, one_by_one.connect() as b:
            assert _state(a) == _state(b), where
    with batched.connect() as conn:
        assert_invariants(conn)


def test_a_payment_after_a_reversal_of_its_account_sees_the_reopened_debt(
    twins: tuple[Engine, Engine],
) -> None:
    """The case found by reading the code: [reversal, payment with PE] answered 13 batched
    (payments went first, and the period's debt was still paid) where arrival order gives
    00, and DU did not count what the reversal reopened."""
    batched, one_by_one = twins
    util = billers(one_by_one)["UTIL01"]
    first = payment(util, "1000002", 250000, period="202611")
    for engine in twins:
        assert record_one(engine, first).code == "00"
    orders: list[Order] = [
        reversal(first),
        payment(util, "1000002", 250000, period="202611"),
        payment(util, "1000002", 1000),
    ]
    with batched.begin() as conn:
        together = [_answer(x) for x in record_batch(conn, orders, NOW)]
    alone = [_answer(record_one(one_by_one, order)) for order in orders]
    assert [code for code, _ in alone] == ["00", "00", "00"]
    assert together == alone
    assert alone[1][1]["due"] == "0" and alone[2][1]["due"] == "499000"
