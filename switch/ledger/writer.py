"""The ledger writer: one thread, group commit.

Requests queue their orders; the writer takes everything queued (up to
``batch_max``), records it in one database transaction, commits, and only
then fires each order's Deferred on the reactor. One commit (one fsync)
carries a whole batch, and each response still leaves after its own commit.

If a batch fails, it is retried one order per transaction so that one bad
order cannot take others down; an order that still fails answers 96 with
nothing written. A full queue sheds load with 91.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import structlog
from sqlalchemy import Connection, Engine
from twisted.internet.defer import Deferred

from switch import metrics
from switch.errors import Overloaded, SystemFailure
from switch.ledger.days import open_day
from switch.ledger.postings import ConcurrentRequest, Order, Recorded, record, record_batch

log = structlog.get_logger(__name__)

_RETRIES = 3
_IDLE_WAIT = 0.05  # seconds; how soon an idle writer notices stop()


class LedgerWriter:
    def __init__(
        self,
        engine: Engine,
        call_from_thread: Callable[..., None],
        batch_max: int = 500,
        queue_max: int = 20000,
        business_day: Callable[[datetime], date] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``business_day`` maps the batch's clock to its calendar business day (the
        cut-over rule); with it, each transaction writes into the day open at its commit
        (``days.open_day``) instead of the day each order was received in."""
        self._engine = engine
        self._business_day = business_day
        self._clock = clock
        self._call_from_thread = call_from_thread
        self._batch_max = batch_max
        self._queue: queue.Queue = queue.Queue(maxsize=queue_max)
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._stopping = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def submit(self, order: Order) -> Deferred[Recorded]:
        """Queue ``order``; the Deferred fires with the committed result, or fails with 91/96."""
        d: Deferred[Recorded] = Deferred()
        with self._lock:  # against stop(): an order is either queued before it, or refused
            if self._stopping:
                d.errback(SystemFailure("the switch is stopping"))
                return d
            try:
                self._queue.put_nowait((order, d))
            except queue.Full:
                metrics.SHED.inc()
                d.errback(Overloaded("ledger queue full"))
        return d

    def stop(self) -> None:
        """Finish every queued order, then end the thread (blocks: call off the reactor)."""
        with self._lock:
            self._stopping = True
        if self._thread.is_alive():
            self._thread.join()

    def depth(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self._write(batch)
            elif self._stopping:
                return  # stopping, and nothing was queued before it

    def _take(self) -> list:
        """Everything queued now (up to batch_max); waits a moment when there is nothing."""
        try:
            batch = [self._queue.get(timeout=_IDLE_WAIT)]
        except queue.Empty:
            return []
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        results = self._record([order for order, _ in batch], self._clock())
        self._call_from_thread(_deliver, [d for _, d in batch], results)

    def _record(self, orders: list[Order], now: datetime) -> list[Recorded | Exception]:
        """The batch in one transaction; a key already taken (a retransmission, or another
        node's) makes it try once more with a look-up of the keys; then order by order."""
        for look_up in (False, True):
            try:
                return self._write_batch(orders, now, look_up)  # type: ignore[return-value]
            except ConcurrentRequest:
                continue
            except Exception:
                log.exception("ledger batch failed; retrying order by order", size=len(orders))
                break
        return [self._write_one(order, now) for order in orders]

    def _write_batch(self, orders: list[Order], now: datetime, look_up: bool) -> list[Recorded]:
        with self._engine.begin() as conn:
            self._take_day(conn, orders, now)
            return record_batch(conn, orders, now, look_up=look_up)

    def _write_one(self, order: Order, now: datetime) -> Recorded | Exception:
        """One order in its own transaction; a key another node took meanwhile is looked up
        again (the next try finds its row and replays it)."""
        for _ in range(_RETRIES):
            try:
                with self._engine.begin() as conn:
                    self._take_day(conn, [order], now)
                    return record(conn, order, now)
            except ConcurrentRequest:
                continue
            except Exception as exc:  # the database is unavailable or the order is bad
                log.error("ledger write failed", error=type(exc).__name__, mti=order.key.mti)
                return SystemFailure("ledger unavailable")
        return SystemFailure("request key contended")

    def _take_day(self, conn: Connection, orders: Sequence[Order], now: datetime) -> None:
        """The transaction's first statement: the business day its orders belong to, the
        one open at commit by the batch's own clock, locked against closing until then."""
        if self._business_day is not None:
            day = open_day(conn, self._business_day(now))
            for order in orders:
                order.business_day = day


def _deliver(deferreds: list[Deferred], results: list) -> None:
    for d, result in zip(deferreds, results, strict=True):
        if isinstance(result, Exception):
            d.errback(result)
        else:
            d.callback(result)
