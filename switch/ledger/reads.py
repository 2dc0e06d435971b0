"""A bounded thread pool for database reads, so the reactor never blocks on SQL.

A read the database leaves unanswered fails with 96 after ``deadline``
seconds, so that a request waiting on it is still answered in time (the
thread may go on waiting; its late result is dropped). Reads record
nothing, so 96 is the truth; ``transaction`` (small writes) has no such bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from switch import metrics
from switch.errors import Overloaded, SystemFailure

T = TypeVar("T")


class Reads:
    def __init__(
        self,
        engine: Engine,
        reactor: Any,
        threads: int = 4,
        queue_max: int = 2000,
        deadline: float | None = None,
    ):
        self._engine = engine
        self._deadline = deadline
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="db-reads")
        self._pending = 0
        self._queue_max = queue_max
        self._in_flight: dict[tuple[Any, ...], list[Deferred[Any]]] = {}

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()

    def run(self, query: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``query(conn, *args)`` in a read transaction on the pool (bounded by the
        deadline)."""
        return self._bounded(self._submit(self._read, query, *args))

    def _bounded(self, d: Deferred[T]) -> Deferred[T]:
        """``d``'s result, or a 96 if it has none by the deadline."""
        if self._deadline is None or d.called:
            return d
        answer: Deferred[T] = Deferred()
        timer = self._reactor.callLater(self._deadline, _give_up, answer)

        def relay(result: Any) -> None:
            if timer.active():
                timer.cancel()
            if answer.called:
                return  # too late: the 96 went out already
            if isinstance(result, Failure):
                answer.errback(result)
            else:
                answer.callback(result)

        d.addBoth(relay)
        return answer

    def shared(self, query: Callable[..., T], *args: Any) -> Deferred[T]:
        """As ``run``, but callers asking the same while it is in flight share one read.

        A cache entry expiring under load (a terminal's sign-on, a card) would
        otherwise send every request in flight for it to the database at once.
        ``args`` must be hashable; the result is shared, so it must not be mutated.
        """
        key = (query, *args)
        mine: Deferred[T] = Deferred()
        waiters = self._in_flight.get(key)
        if waiters is not None:
            waiters.append(mine)
            return mine
        self._in_flight[key] = [mine]
        self.run(query, *args).addBoth(self._settle, key)  # may fire at once (queue full)
        return mine

    def _settle(self, outcome: Any, key: tuple[Any, ...]) -> None:
        for waiter in self._in_flight.pop(key):
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    def _submit(self, call: Callable[..., T], *args: Any) -> Deferred[T]:
        if self._pending >= self._queue_max:
            metrics.SHED.inc()
            return fail(Overloaded("read queue full"))
        self._pending += 1
        d = deferToThreadPool(self._reactor, self._pool, call, *args)
        d.addBoth(self._done)
        return d

    def transaction(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``work(conn, *args)`` in a committed transaction (small writes that are
        not money, such as a key change), on the same bounded pool."""
        return self._submit(self._write, work, *args)

    def _read(self, query: Callable[..., T], *args: Any) -> T:
        with self._engine.connect() as conn:
            return query(conn, *args)

    def _write(self, work: Callable[..., T], *args: Any) -> T:
        with self._engine.begin() as conn:
            return work(conn, *args)

    def _done(self, result: Any) -> Any:
        self._pending -= 1
        return result


def _give_up(answer: Deferred[Any]) -> None:
    if not answer.called:
        answer.errback(SystemFailure("the database did not answer a read in time"))
