"""The ledger writer: one thread, group commit, an answer within a deadline.

Requests queue their orders; the writer takes everything queued (up to
``batch_max``), records it in one database transaction, commits, and only
then fires each order's Deferred on the reactor. One commit (one fsync)
carries a whole batch, and each response still leaves after its own commit.

Every order carries a deadline (``deadline`` seconds after its request was
received). The reactor answers 96 to an order still waiting when it passes
(a sweep of the orders in arrival order every 50 ms: one timer per order
would cost the reactor more than the rest of the writer's bookkeeping), and
the writer never commits an order so answered: just before
COMMIT it claims the batch's orders, and if one is already answered (or late)
the transaction is rolled back and the rest tried again. Only orders whose
COMMIT is under way are beyond the timer: their answer is the truth.

- The database failing a batch (a lost connection, a timeout, a busy lock:
  ``_unavailable``) fails the whole batch at once; nothing was recorded, so
  it is tried again, after a pause, for as long as its orders have time left.
- A failed COMMIT is ambiguous: the batch may have landed. The writer finds
  out from the stored request rows (``landed``) before it answers, asking
  again with growing pauses while the database cannot tell, however long.
- Any other error is an order's fault: the batch is tried one order per
  transaction so that one bad order cannot take others down; an order that
  still fails answers 96 with nothing written.

A full queue sheds load with 91.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from twisted.internet.defer import Deferred

from switch import metrics
from switch.errors import Overloaded, SystemFailure
from switch.ledger.landed import session_over, stored_responses
from switch.ledger.postings import ConcurrentRequest, Order, Recorded, record_batch

log = structlog.get_logger(__name__)

_RETRIES = 3
_IDLE_WAIT = 0.05  # seconds; how soon an idle writer notices stop()
_FIRST_PAUSE = 0.05  # seconds before trying a failed database again; doubles up to _MAX_PAUSE
_MAX_PAUSE = 2.0
_SWEEP = 0.05  # seconds between the reactor's looks at the deadlines of waiting orders

CallLater = Callable[..., Any]  # reactor.callLater: (delay, f, *args) -> a call with cancel()


class _State(Enum):
    QUEUED = "queued"  # waiting, or in a transaction not yet committing: the timer may answer
    COMMITTING = "committing"  # COMMIT under way: only the truth answers it
    ANSWERED = "answered"


class _Ticket:
    """One order on its way: its Deferred, its deadline and where it stands."""

    __slots__ = ("order", "deferred", "expires", "timer", "state")

    def __init__(self, order: Order, deferred: Deferred[Recorded], expires: float) -> None:
        self.order = order
        self.deferred = deferred
        self.expires = expires  # time.monotonic()
        self.timer: Any = None
        self.state = _State.QUEUED


class _Late(Exception):
    """Orders of the batch were answered (their deadline passed) before its COMMIT."""


class _CommitFailed(Exception):
    """COMMIT raised: the batch may or may not have landed."""

    def __init__(self, backend: tuple[int, Any] | None) -> None:
        super().__init__("commit failed")
        self.backend = backend  # the PostgreSQL session that ran it, if any


# SQLite's primary result codes that mean "the database", not "this order": BUSY, LOCKED,
# NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL (its OperationalError also covers "no such table")
_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 10, 13, 14, 15})


def _unavailable(exc: BaseException) -> bool:
    """The database (not the order) failed: lost or refused connection, timeout, lock."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", 0) & 0xFF in _SQLITE_UNAVAILABLE
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout)


def _missed() -> SystemFailure:
    metrics.DEADLINE_MISSED.inc()
    return SystemFailure("the ledger did not answer within the deadline")


class LedgerWriter:
    def __init__(
        self,
        engine: Engine,
        call_from_thread: Callable[..., None],
        batch_max: int = 500,
        queue_max: int = 20000,
        deadline: float = 10.0,
        call_later: CallLater | None = None,
        business_day: Callable[[datetime], date] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``business_day`` maps the batch's clock to its calendar business day (the
        cut-over rule); with it, each transaction takes the first open day from there
        (``days.open_day``) instead of the day each order was received in."""
        self._business_day = business_day
        self._clock = clock
        self._engine = engine
        self._call_from_thread = call_from_thread
        self._call_later = call_later
        self._batch_max = batch_max
        self._deadline = deadline
        self._queue: queue.Queue[_Ticket] = queue.Queue(maxsize=queue_max)
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._stopping = False
        self._lock = threading.Lock()  # submit against stop(); the tickets' states
        self._watch: deque[_Ticket] = deque()  # reactor only: orders by deadline, roughly
        self._sweeper: Any = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, order: Order, received_at: datetime | None = None) -> Deferred[Recorded]:
        """Queue ``order``; the Deferred fires with the committed result, or fails with
        91/96. Runs on the reactor. ``received_at``: when its request arrived (the
        deadline counts from there)."""
        d: Deferred[Recorded] = Deferred()
        left = self.time_left(received_at)
        ticket = _Ticket(order, d, time.monotonic() + left)
        with self._lock:  # against stop(): an order is either queued before it, or refused
            if self._stopping:
                d.errback(SystemFailure("the switch is stopping"))
                return d
            if left <= 0:
                d.errback(_missed())
                return d
            try:
                self._queue.put_nowait(ticket)
            except queue.Full:
                metrics.SHED.inc()
                d.errback(Overloaded("ledger queue full"))
                return d
        self._keep_watch(ticket, left)
        return d

    def time_left(self, received_at: datetime | None) -> float:
        """Seconds an order of a request received at ``received_at`` has left to be
        recorded (negative: too late)."""
        age = time.time() - received_at.timestamp() if received_at else 0.0
        return self._deadline - max(age, 0.0)

    def stop(self) -> None:
        """Finish every queued order, then end the thread (blocks: call off the reactor)."""
        with self._lock:
            self._stopping = True
        if self._thread.is_alive():
            self._thread.join()

    def depth(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------ deadlines (reactor side)

    def _keep_watch(self, ticket: _Ticket, left: float) -> None:
        """Have the reactor answer ``ticket`` 96 when its deadline passes (if still waiting).

        Orders join the sweep's queue in arrival order; one whose deadline comes
        clearly before the last one's (its request spent longer getting here)
        gets a timer of its own instead, so no order waits behind a later one.
        """
        if self._call_later is None:
            return
        if self._watch and ticket.expires < self._watch[-1].expires - _SWEEP:
            ticket.timer = self._call_later(left, self._expire, ticket)
            return
        self._watch.append(ticket)
        if self._sweeper is None:
            self._sweeper = self._call_later(_SWEEP, self._sweep)

    def _sweep(self) -> None:
        """Drop answered (or committing) orders from the head, answer expired ones 96."""
        now = time.monotonic()
        watch = self._watch
        while watch:
            head = watch[0]
            if head.state is _State.QUEUED and head.expires > now:
                break
            watch.popleft()
            if head.state is _State.QUEUED:
                self._expire(head)
        self._sweeper = self._call_later(_SWEEP, self._sweep) if watch else None

    def _watch_again(self, tickets: list[_Ticket]) -> None:
        """Orders back to waiting after a failed commit that did not land: on the reactor,
        each gets a timer of its own (the sweep let go of them when they committed)."""
        now = time.monotonic()
        for ticket in tickets:
            if self._call_later is not None and ticket.state is _State.QUEUED:
                ticket.timer = self._call_later(max(ticket.expires - now, 0), self._expire, ticket)

    def _expire(self, ticket: _Ticket) -> None:
        """The deadline: 96 to an order nothing has committed or is committing."""
        ticket.timer = None
        with self._lock:
            if ticket.state is not _State.QUEUED:
                return
            ticket.state = _State.ANSWERED
        ticket.deferred.errback(_missed())  # logged by the pipeline with the request

    def _answer(self, tickets: Sequence[_Ticket], results: Sequence[Any]) -> None:
        """Hand results to the reactor, for tickets nobody answered yet (writer thread)."""
        mine = []
        with self._lock:
            for ticket, result in zip(tickets, results, strict=True):
                if ticket.state is not _State.ANSWERED:
                    ticket.state = _State.ANSWERED
                    mine.append((ticket, result))
        if mine:
            self._call_from_thread(_deliver, mine)

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        again: list[_Ticket] = []
        pause = _FIRST_PAUSE
        while True:
            batch, again = self._take(again), []
            if batch is None:
                if self._stopping:
                    return  # stopping, and nothing was queued before it
                continue
            if not batch:
                continue  # all of it was answered already
            again, failed = self._write(batch)
            if failed:  # the database failed: give it a moment before the next try
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            else:
                pause = _FIRST_PAUSE

    def _take(self, again: list[_Ticket]) -> list[_Ticket] | None:
        """Orders to try again first, then everything queued now (up to batch_max);
        waits a moment, and None, when there is nothing. Orders already answered are
        dropped, and orders whose deadline passed are answered 96 (never written)."""
        batch = list(again)
        if not batch:
            try:
                batch.append(self._queue.get(timeout=_IDLE_WAIT))
            except queue.Empty:
                return None
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return self._live(batch)

    def _live(self, tickets: list[_Ticket]) -> list[_Ticket]:
        now = time.monotonic()
        late = [t for t in tickets if t.state is _State.QUEUED and t.expires <= now]
        if late:
            self._answer(late, [_missed()] * len(late))
        return [t for t in tickets if t.state is _State.QUEUED]

    def _write(self, batch: list[_Ticket]) -> tuple[list[_Ticket], bool]:
        """Record the batch; returns the orders to try again, and whether the database
        failed (then the next try waits a little)."""
        metrics.BATCH_SIZE.observe(len(batch))
        now = self._clock()
        for look_up in (False, True):
            try:
                self._answer(batch, self._transaction(batch, now, look_up))
                return [], False
            except ConcurrentRequest:
                continue  # a key already taken: again, with a look-up of the keys
            except _Late:
                return batch, False  # the late ones are answered; the rest go again
            except _CommitFailed as failed:  # what did not land goes again, after a pause
                return self._find_out(batch, failed.backend), True
            except Exception as exc:
                if _unavailable(exc):
                    log.warning("ledger batch failed: database", size=len(batch), error=str(exc))
                    return batch, True
                log.exception("ledger batch failed; retrying order by order", size=len(batch))
                break
        return self._one_by_one(batch, now)

    def _one_by_one(self, batch: list[_Ticket], now: datetime) -> tuple[list[_Ticket], bool]:
        """Each order in its own transaction; a key another node took meanwhile is looked
        up again (the next try finds its row and replays it)."""
        again: list[_Ticket] = []
        for i, ticket in enumerate(batch):
            for _ in range(_RETRIES):
                try:
                    self._answer([ticket], self._transaction([ticket], now, True))
                except ConcurrentRequest:
                    continue
                except _Late:
                    pass
                except _CommitFailed as failed:
                    again.extend(self._find_out([ticket], failed.backend))
                except Exception as exc:
                    if _unavailable(exc):
                        return again + batch[i:], True
                    log.error(
                        "ledger write failed", error=type(exc).__name__, mti=ticket.order.key.mti
                    )
                    self._answer([ticket], [SystemFailure("ledger write failed")])
                break
            else:
                self._answer([ticket], [SystemFailure("request key contended")])
        return again, False

    def _transaction(self, batch: list[_Ticket], now: datetime, look_up: bool) -> list[Recorded]:
        """One transaction: record, claim the orders, commit."""
        with self._engine.connect() as conn:
            backend = conn.info.get("backend")
            tx = conn.begin()
            try:
                orders = [t.order for t in batch]
                clock_day = self._business_day(now) if self._business_day else None
                results = record_batch(conn, orders, now, look_up=look_up, clock_day=clock_day)
                self._claim(batch)
            except BaseException:
                _quietly(tx.rollback)
                raise
            try:
                tx.commit()
            except Exception as exc:
                log.error("ledger COMMIT failed; finding out", size=len(batch), error=str(exc))
                raise _CommitFailed(backend) from exc
        return results

    def _claim(self, batch: list[_Ticket]) -> None:
        """Just before COMMIT: every order still unanswered and in time is now committing;
        otherwise answer the late ones and raise _Late (the transaction rolls back)."""
        now = time.monotonic()
        with self._lock:
            late = [t for t in batch if t.state is not _State.QUEUED or t.expires <= now]
            if not late:
                for t in batch:
                    t.state = _State.COMMITTING
                return
        self._answer(late, [_missed()] * len(late))
        raise _Late()

    def _find_out(self, batch: list[_Ticket], backend: tuple[int, Any] | None) -> list[_Ticket]:
        """After a failed COMMIT: answer what landed with its stored response; what did not
        goes back to waiting (to be tried again, or answered 96 if its time is up). Asks
        until the database tells, however long; no guess is ever answered."""
        pause, since = _FIRST_PAUSE, time.monotonic()
        while True:
            try:
                with self._engine.connect() as conn:
                    found = self._look_up(conn, batch, backend)
                break
            except Exception as exc:
                log.warning("cannot tell yet whether a commit landed", error=str(exc), wait=pause)
                if self._stopping and time.monotonic() - since > self._deadline:
                    self._abandon(batch)
                    return []
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
        landed = [(t, r) for t, r in zip(batch, found, strict=True) if r is not None]
        if landed:
            self._answer([t for t, _ in landed], [r for _, r in landed])
        lost = [t for t, r in zip(batch, found, strict=True) if r is None]
        log.warning("failed commit found out", landed=len(landed), not_landed=len(lost))
        metrics.COMMITS_FOUND_OUT.labels("yes" if landed else "no").inc()
        with self._lock:
            for t in lost:
                t.state = _State.QUEUED  # known not recorded: the deadline rules again
        if lost:
            self._call_from_thread(self._watch_again, lost)
        return lost

    def _abandon(self, batch: list[_Ticket]) -> None:
        """Stopping, and the database still cannot tell: these requests get no answer (the
        acquirer's timeout and its reversal or repeat will settle them), never a guess."""
        with self._lock:
            for t in batch:
                t.state = _State.ANSWERED
        keys = [(t.order.key.terminal_id, t.order.key.stan, t.order.key.mti) for t in batch]
        log.error("stopping without knowing whether a commit landed; left unanswered", keys=keys)

    def _look_up(
        self, conn: Connection, batch: list[_Ticket], backend: tuple[int, Any] | None
    ) -> list[Recorded | None]:
        if backend is not None and not session_over(conn, backend):
            conn.rollback()
            raise RuntimeError("the session of the failed commit is still running")
        return stored_responses(conn, [t.order for t in batch])


def _quietly(call: Callable[[], Any]) -> None:
    """A rollback on a connection that may be dead: its failure changes nothing."""
    try:
        call()
    except Exception:  # the connection is gone: the server rolls back on its own
        pass


def _deliver(answered: list[tuple[_Ticket, Any]]) -> None:
    for ticket, result in answered:
        if ticket.timer is not None and ticket.timer.active():
            ticket.timer.cancel()
        ticket.timer = None
        if isinstance(result, Exception):
            ticket.deferred.errback(result)
        else:
            ticket.deferred.callback(result)
