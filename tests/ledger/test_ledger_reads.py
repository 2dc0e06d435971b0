"""The read pool's shared reads: callers asking the same while it is in flight share one read.

Real SQLite and a real thread pool; the test thread plays the reactor (it runs what
the pool hands back through ``callFromThread``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text
from twisted.python.failure import Failure

from switch.errors import Overloaded, SystemFailure
from switch.ledger.reads import Reads

WAIT = 10.0


class LoopReactor:
    """``callFromThread`` queues; ``pump`` runs the queue on the test thread."""

    def __init__(self) -> None:
        self._calls: queue.Queue[tuple[Any, tuple[Any, ...]]] = queue.Queue()

    def callFromThread(self, f: Any, *args: Any) -> None:  # noqa: N802 (Twisted's name)
        self._calls.put((f, args))

    def callLater(self, delay: float, f: Any, *args: Any) -> Any:  # noqa: N802
        """A timer thread that hands ``f`` to the test thread, like the reactor would."""
        timer = threading.Timer(delay, self.callFromThread, (f, *args))
        timer.daemon = True
        timer.active = timer.is_alive  # type: ignore[attr-defined]
        timer.start()
        return timer

    def pump(self, until: Any) -> None:
        while not until():
            f, args = self._calls.get(timeout=WAIT)
            f(*args)


class Gate:
    """A query that counts its runs and waits to be let through."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.open = threading.Event()

    def __call__(self, conn: Connection, name: str) -> str:
        self.runs.append(name)
        assert self.open.wait(WAIT)
        if name == "bad":
            raise LookupError("no such row")
        return conn.execute(text("select :n || '!'"), {"n": name}).scalar_one()


@pytest.fixture
def reads(tmp_path: Path) -> Iterator[tuple[Reads, LoopReactor]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    reactor = LoopReactor()
    pool = Reads(engine, reactor, threads=4, queue_max=100)
    pool.start()
    yield pool, reactor
    pool.stop()
    engine.dispose()


def _outcomes(deferreds: list[Any]) -> list[Any]:
    got: list[Any] = [None] * len(deferreds)
    for i, d in enumerate(deferreds):
        d.addBoth(lambda r, i=i: got.__setitem__(i, r))
    return got


def test_the_same_read_in_flight_runs_once_and_every_caller_gets_it(
    reads: tuple[Reads, LoopReactor],
) -> None:
    pool, reactor = reads
    gate = Gate()
    got = _outcomes([pool.shared(gate, "a") for _ in range(5)] + [pool.shared(gate, "b")])
    gate.open.set()
    reactor.pump(lambda: all(g is not None for g in got))
    assert got == ["a!"] * 5 + ["b!"]
    assert sorted(gate.runs) == ["a", "b"]
    later = _outcomes([pool.shared(gate, "a")])  # done reads are not kept: a new one runs
    reactor.pump(lambda: later[0] is not None)
    assert later == ["a!"] and sorted(gate.runs) == ["a", "a", "b"]


def test_a_failed_read_fails_every_caller_and_is_not_kept(
    reads: tuple[Reads, LoopReactor],
) -> None:
    pool, reactor = reads
    gate = Gate()
    got = _outcomes([pool.shared(gate, "bad") for _ in range(3)])
    gate.open.set()
    reactor.pump(lambda: all(g is not None for g in got))
    assert all(isinstance(g, Failure) and g.check(LookupError) for g in got)
    assert gate.runs == ["bad"]


def test_a_full_queue_answers_overloaded_at_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    pool = Reads(engine, LoopReactor(), queue_max=0)
    got = _outcomes([pool.shared(Gate(), "a"), pool.shared(Gate(), "a")])
    assert isinstance(got[0], Failure) and got[0].check(Overloaded)
    assert isinstance(got[1], Failure) and got[1].check(Overloaded)
    engine.dispose()


def test_a_read_the_database_leaves_unanswered_fails_with_96_at_the_deadline(
    tmp_path: Path,
) -> None:
    """Every caller gets 96 at the deadline; the late result, when it comes, is dropped."""
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    reactor = LoopReactor()
    pool = Reads(engine, reactor, threads=2, deadline=0.5)
    pool.start()
    try:
        gate = Gate()
        got = _outcomes([pool.shared(gate, "a") for _ in range(3)] + [pool.run(gate, "b")])
        reactor.pump(lambda: all(g is not None for g in got))
        assert all(isinstance(g, Failure) and g.check(SystemFailure) for g in got), got
        assert got[0].value.code == "96"
        gate.open.set()
        again = _outcomes([pool.shared(gate, "a")])  # the database is back
        reactor.pump(lambda: again[0] is not None)
        assert again == ["a!"]
    finally:
        gate.open.set()
        pool.stop()
        engine.dispose()
