"""The ledger writer under a failing database: answers within the deadline, the truth
after a failed COMMIT, and a lost connection failing the whole batch at once.

PostgreSQL is reached through a TCP proxy (tests/pg_proxy.py) that goes silent or
cuts connections at the COMMIT; SQLite's write lock is held by another connection.
Waits are bounded generously; nothing asserts how long an answer took.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event

from switch.errors import SystemFailure
from switch.ledger import schema as s
from switch.ledger.database import Timeouts, make_engine
from switch.ledger.postings import PaymentOrder, Recorded
from tests.conftest import postgres_schema_url
from tests.ledger.ledger_support import (
    Node,
    Result,
    assert_invariants,
    billers,
    count,
    open_ledger,
    payment,
    request_row,
)
from tests.pg_proxy import PgProxy, pg_proxy

DEADLINE = 1.0  # seconds: short, so the tests do not wait long
ANSWER = 20.0  # seconds: generous bound on waiting for an answer (the deadline is 1 s)

MakeNode = Callable[..., Node]


@pytest.fixture
def pg() -> Iterator[tuple[str, Engine]]:
    """A seeded PostgreSQL schema: its URL, and an engine that reaches it directly."""
    for url in postgres_schema_url():
        engine = open_ledger(url)
        yield url, engine
        engine.dispose()


@pytest.fixture
def proxy() -> Iterator[PgProxy]:
    with pg_proxy() as p:
        yield p


@pytest.fixture
def nodes() -> Iterator[MakeNode]:
    made: list[Node] = []

    def make(engine: Engine, **kwargs: object) -> Node:
        kwargs.setdefault("deadline", DEADLINE)
        n = Node(engine, **kwargs)
        made.append(n)
        return n

    yield make
    for n in made:
        if n.started and not n.stopped:
            n.stop()
        n.engine.dispose()


def _payments(ledger: Engine, n: int) -> list[PaymentOrder]:
    util = billers(ledger)["UTIL01"]
    return [payment(util, "1000002", 100 + i) for i in range(n)]


def _is_96(answer: object) -> bool:
    return isinstance(answer, SystemFailure) and answer.code == "96"


def _recorded(ledger: Engine, orders: list[PaymentOrder]) -> list[bool]:
    with ledger.connect() as conn:
        return [request_row(conn, o.key) is not None for o in orders]


def _payments_count(ledger: Engine) -> int:
    with ledger.connect() as conn:
        return count(conn, s.payments)


def _approved(node: Node, ledger: Engine) -> Recorded:
    """A fresh payment through ``node``: approved."""
    answer = node.submit(_payments(ledger, 1)[0]).get(ANSWER)
    assert isinstance(answer, Recorded) and answer.code == "00", answer
    return answer


@pytest.mark.postgres
def test_blackholed_postgres_answers_96_by_the_deadline(
    pg: tuple[str, Engine], proxy: PgProxy, nodes: MakeNode
) -> None:
    url, ledger = pg
    node = nodes(make_engine(proxy.url(url)))
    node.start()
    _approved(node, ledger)
    before = _payments_count(ledger)
    proxy.blackhole()
    orders = _payments(ledger, 5)
    pending = [node.submit(o) for o in orders]
    answers = [p.get(ANSWER) for p in pending]
    assert all(_is_96(a) for a in answers), answers
    proxy.heal()
    _approved(node, ledger)  # after what the writer was doing when it went silent
    assert _recorded(ledger, orders) == [False] * 5  # told 96: never written
    assert _payments_count(ledger) == before + 1
    with ledger.connect() as conn:
        assert_invariants(conn)


@pytest.mark.postgres
def test_commit_cut_after_it_landed_waits_for_the_truth(
    pg: tuple[str, Engine], proxy: PgProxy, nodes: MakeNode
) -> None:
    """COMMIT reaches the server, the connection is lost, and the database is unreachable
    for longer than the deadline: the payments wait, then get their stored 00."""
    url, ledger = pg
    node = nodes(make_engine(proxy.url(url)))
    orders = _payments(ledger, 3)
    pending = [node.submit(o) for o in orders]  # queued before the start: one batch
    proxy.cut_commits(after=True, then_refuse=True)
    node.start()
    assert proxy.cuts.acquire(timeout=ANSWER)
    time.sleep(2 * DEADLINE)
    assert not any(p.done() for p in pending), "answered before the database could tell"
    proxy.heal()
    answers = [p.get(ANSWER) for p in pending]
    assert all(isinstance(a, Recorded) and a.code == "00" for a in answers), answers
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 3  # each once
        for order, answer in zip(orders, answers, strict=True):
            assert answer.response == _stored(conn, order)
        assert_invariants(conn)


def _stored(conn, order: PaymentOrder) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return json.loads(request_row(conn, order.key).response)


@pytest.mark.postgres
def test_commit_lost_before_the_server_got_it_answers_96(
    pg: tuple[str, Engine], proxy: PgProxy, nodes: MakeNode
) -> None:
    """COMMIT held (the database silent) past the deadline, then the connection is cut
    without it: the orders waited for the truth, which is 'nothing recorded' (96), and
    they are not written afterwards."""
    url, ledger = pg
    node = nodes(make_engine(proxy.url(url)))
    orders = _payments(ledger, 2)
    pending = [node.submit(o) for o in orders]
    proxy.hold_commits()
    node.start()
    assert proxy.holds.acquire(timeout=ANSWER)
    time.sleep(2 * DEADLINE)
    assert not any(p.done() for p in pending), "a commit under way was answered by the timer"
    proxy.drop_held()
    answers = [p.get(ANSWER) for p in pending]
    assert all(_is_96(a) for a in answers), answers
    _approved(node, ledger)
    assert _recorded(ledger, orders) == [False, False]
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


@pytest.mark.postgres
def test_commit_cut_every_time_answers_96_and_records_nothing(
    pg: tuple[str, Engine], proxy: PgProxy, nodes: MakeNode
) -> None:
    url, ledger = pg
    node = nodes(make_engine(proxy.url(url)))
    orders = _payments(ledger, 3)
    pending = [node.submit(o) for o in orders]
    proxy.cut_commits(after=False, times=None)
    node.start()
    answers = [p.get(ANSWER) for p in pending]
    assert all(_is_96(a) for a in answers), answers
    proxy.heal()
    _approved(node, ledger)
    assert _recorded(ledger, orders) == [False] * 3
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 1
        assert_invariants(conn)


@pytest.mark.postgres
def test_a_lost_connection_fails_the_whole_batch_at_once(
    pg: tuple[str, Engine], proxy: PgProxy, nodes: MakeNode
) -> None:
    """The connection is lost in the middle of a batch: the batch is tried again as a
    whole (one transaction), not order by order."""
    url, ledger = pg
    engine = make_engine(proxy.url(url))
    commits = [0]

    @event.listens_for(engine, "commit")
    def _on_commit(_conn) -> None:  # type: ignore[no-untyped-def]
        commits[0] += 1

    node = nodes(engine, deadline=ANSWER)
    orders = _payments(ledger, 20)
    pending = [node.submit(o) for o in orders]
    proxy.cut_writes()
    node.start()
    answers = [p.get(ANSWER) for p in pending]
    assert all(isinstance(a, Recorded) and a.code == "00" for a in answers), answers[:3]
    assert commits[0] == 1
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 20
        assert_invariants(conn)


@pytest.fixture
def sqlite_ledger(tmp_path) -> Iterator[tuple[str, Engine]]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = open_ledger(url)
    yield url, engine
    engine.dispose()


def test_sqlite_write_lock_held_answers_96_by_the_deadline(
    sqlite_ledger: tuple[str, Engine], nodes: MakeNode
) -> None:
    url, ledger = sqlite_ledger
    node = nodes(make_engine(url))
    node.start()
    _approved(node, ledger)
    orders = _payments(ledger, 3)
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        answers = [p.get(ANSWER) for p in [node.submit(o) for o in orders]]
        assert all(_is_96(a) for a in answers), answers
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _approved(node, ledger)
    assert _recorded(ledger, orders) == [False] * 3
    with ledger.connect() as conn:
        assert count(conn, s.payments) == 2
        assert_invariants(conn)


def test_an_order_past_its_deadline_is_never_written(
    sqlite_ledger: tuple[str, Engine], nodes: MakeNode
) -> None:
    """Queued while the writer could not write, answered 96 by the timer: when the writer
    gets to it, it is skipped, even though the database is fine again."""
    url, ledger = sqlite_ledger
    node = nodes(make_engine(url))
    orders = _payments(ledger, 4)
    pending = [node.submit(o) for o in orders]  # the writer is not started yet
    answers = [p.get(ANSWER) for p in pending]
    assert all(_is_96(a) for a in answers), answers
    node.start()
    _approved(node, ledger)
    assert _recorded(ledger, orders) == [False] * 4


def test_engines_carry_the_timeouts(db_url: str) -> None:
    timeouts = Timeouts(statement_timeout=4.0, lock_timeout=3.0, sqlite_busy_timeout=1.5)
    engine = make_engine(db_url, timeouts=timeouts)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1500
                return
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "4s"
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "3s"
            assert conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar() == (
                "30s"
            )
            assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("bs_")
            dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
            assert dsn["keepalives"] == "1" and dsn["connect_timeout"] == "3"
            assert dsn["tcp_user_timeout"] == "10000"
    finally:
        engine.dispose()


def test_a_request_received_long_ago_is_answered_96_at_once(
    sqlite_ledger: tuple[str, Engine], nodes: MakeNode
) -> None:
    """The deadline counts from the request's arrival, not from its queueing."""
    url, ledger = sqlite_ledger
    node = nodes(make_engine(url))
    node.start()
    order = _payments(ledger, 1)[0]
    result = Result()
    with node._reactor:
        late = datetime.now(UTC) - timedelta(seconds=DEADLINE + 1)
        node.writer.submit(order, late).addBoth(result.set)
    assert _is_96(result.get(ANSWER))
    _approved(node, ledger)
    assert _recorded(ledger, [order]) == [False]


def test_stop_ends_while_the_database_is_locked(
    sqlite_ledger: tuple[str, Engine], nodes: MakeNode
) -> None:
    """Stopping drains the queue: orders the database cannot take are answered 96 at their
    deadline, and the writer ends (it does not wait for the lock to go)."""
    url, ledger = sqlite_ledger
    node = nodes(make_engine(url, timeouts=Timeouts(sqlite_busy_timeout=0.1)))
    orders = _payments(ledger, 3)
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        pending = [node.submit(o) for o in orders]
        node.start()
        node.stop()
        assert all(_is_96(p.get(ANSWER)) for p in pending)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _recorded(ledger, orders) == [False] * 3


def test_an_order_with_an_earlier_deadline_does_not_wait_behind_a_later_one(
    sqlite_ledger: tuple[str, Engine], nodes: MakeNode
) -> None:
    """A request that spent long before reaching the ledger is queued behind fresh ones:
    it still gets its 96 at its own deadline, not theirs."""
    url, ledger = sqlite_ledger
    node = nodes(make_engine(url), deadline=60.0)  # not started: nothing is written
    fresh, old = _payments(ledger, 2)
    waiting = node.submit(fresh)
    result = Result()
    with node._reactor:
        received = datetime.now(UTC) - timedelta(seconds=59)
        node.writer.submit(old, received).addBoth(result.set)
    assert _is_96(result.get(ANSWER))
    assert not waiting.done()
    node.start()
    assert waiting.get(ANSWER).code == "00"
    assert _recorded(ledger, [fresh, old]) == [True, False]
