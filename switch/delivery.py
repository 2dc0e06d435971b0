"""The delivery loop: outbox rows to their online billers, until each acknowledges.

Runs on every node and worker, on the reactor; database work goes through the
read pool's small transactions (``Reads.transaction``), biller calls through
the adapters (Deferreds), so nothing blocks. Each look (every ``[outbox] poll``
seconds, at once again after a full batch) claims a few due rows under a lease
(``switch/ledger/outbox.py``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two
nodes never deliver one row at once; a node that dies leaves its rows to others
when the lease passes) and delivers each:

- ``pay``: ``adapter.pay``; an acceptance is done;
- ``reverse``: ``adapter.reverse`` (the adapter counts a 404 as done);
- ``settle``: done at once if the ledger posted the payment (a retransmission armed
  the row again after the posting removed it: the payment stands); else
  ``adapter.status``, then ``adapter.reverse`` if the biller holds the payment as
  accepted; unknown or already reversed there is done.

A transient failure (unavailable, in doubt, or anything unexpected) tries the
row again after a delay that doubles per attempt, with jitter, up to
``backoff_cap``; a refusal (a 4xx: unknown account, conflict...) parks the row
with its reason: it will not succeed by repetition, an operator must look.

A dead biller is not hammered: on top of each row's own backoff the biller
rests on this node after a failure (no claims of its rows) for a delay that
grows with its consecutive failures, and at most ``max_in_flight`` of its rows
are delivered at once per node (rows claimed beyond that wait their turn here,
under their lease). The adapter's circuit breaker makes the calls that do go out
fail fast.

Time is the clock's (the reactor; a ``task.Clock`` in tests): the claim
compares leases and due times with this node's clock, so nodes' clocks must
agree to well within a lease.

SQLite: every write here is one statement that takes the write lock first, so
several processes work, serialised; one node is the expected case there.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred, succeed
from twisted.python.failure import Failure

from routing.billers import BillerError, InDoubt, Unavailable
from routing.routes import BillerAdapter
from switch import metrics
from switch.config import OutboxSettings
from switch.ledger import online, outbox
from switch.ledger.outbox import Claimed

log = structlog.get_logger(__name__)

Db = Callable[..., Deferred[Any]]  # run ``work(conn, *args)`` in a committed transaction
GAUGE_EVERY = 10.0  # seconds between refreshes of the queue gauges (one grouped count)
LOG_EVERY = 60.0  # seconds: failed attempts of one biller are logged once per this
LOCAL_MAX = 10  # batches: rows claimed and not yet finished on this node, at most
TRANSIENT = (Unavailable, InDoubt)  # worth trying again; other BillerErrors park the row


class NotOnline(BillerError):
    """The row's biller is not served over an API (its kind changed, or a wrong row):
    nothing can be delivered to it, so the row is parked for an operator."""


def _pay(adapter: BillerAdapter, row: Claimed) -> Deferred[Any]:
    return adapter.pay(row.biller_code, outbox.payment_request(row.body))


def _reverse(adapter: BillerAdapter, row: Claimed) -> Deferred[Any]:
    return adapter.reverse(row.biller_code, row.payment_id)


@inlineCallbacks
def _settle(adapter: BillerAdapter, row: Claimed):  # type: ignore[no-untyped-def]
    held = yield adapter.status(row.biller_code, row.payment_id)
    if held is not None and held.status == "accepted":
        yield adapter.reverse(row.biller_code, row.payment_id)


DELIVER: dict[str, Callable[[BillerAdapter, Claimed], Deferred[Any]]] = {
    outbox.PAY: _pay,
    outbox.REVERSE: _reverse,
    outbox.SETTLE: _settle,
}


def backoff(attempt: int, base: float, cap: float, draw: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): half of
    ``base * 2**(attempt-1)`` (capped) plus a random part of the other half, so delays
    never shrink from one attempt to the next and nodes do not retry in step."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 60))
    return ceiling / 2 + draw * ceiling / 2


def _reason(error: BaseException) -> str:
    """A short reason for ``last_error`` and the logs (adapters' messages carry no card data:
    bill payments have none)."""
    code = f" ({error.code})" if isinstance(error, BillerError) else ""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}{code}{': ' + text if text else ''}"[: outbox.ERROR_MAX]


class DeliveryLoop:
    """One node's deliveries. ``db`` runs database work off the reactor; ``adapter_for``
    gives a biller's adapter by its code (raising if it has none: tried again later)."""

    def __init__(
        self,
        db: Db,
        adapter_for: Callable[[str], BillerAdapter],
        settings: OutboxSettings,
        clock: Any,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        self._adapter_for = adapter_for
        self._s = settings
        self._clock = clock
        self._draw = draw
        self._timer: Any = None
        self._gauge_timer: Any = None
        self._running = False
        self._active: dict[str, int] = defaultdict(int)  # biller -> deliveries under way
        self._waiting: dict[str, deque[Claimed]] = defaultdict(deque)  # claimed, not started
        self._failures: dict[str, int] = defaultdict(int)  # biller -> failures in a row
        self._rest: dict[str, datetime] = {}  # biller -> no claims before this
        self._logged: dict[str, tuple[float, int]] = {}  # biller -> (last line, suppressed)
        self._idle: list[Deferred[None]] = []  # stop() waiting for deliveries to end

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._timer = self._clock.callLater(0, self.poll)
        self._gauge_timer = self._clock.callLater(0, self._gauges_tick)

    def stop(self, timeout: float) -> Deferred[None]:
        """No more claims; rows claimed and not started are handed back at once; waits up
        to ``timeout`` seconds for deliveries under way (those still going when it passes
        are delivered again by whoever claims them after their lease)."""
        self._running = False
        for timer in (self._timer, self._gauge_timer):
            if timer is not None and timer.active():
                timer.cancel()
        unstarted = [row for rows in self._waiting.values() for row in rows]
        self._waiting.clear()
        d = self._release(unstarted)
        d.addCallback(lambda _: self._wait_idle(timeout))
        return d

    def _release(self, rows: list[Claimed]) -> Deferred[Any]:
        if not rows:
            return succeed(None)
        now = self.now()
        d = self._db(_release_all, rows, now)
        d.addErrback(lambda f: log.warning("outbox rows not handed back", error=_reason(f.value)))
        return d

    def _wait_idle(self, timeout: float) -> Deferred[None]:
        if self.in_flight() == 0:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        self._clock.callLater(timeout, self._give_up_waiting, d)
        return d

    def _give_up_waiting(self, d: Deferred[None]) -> None:
        if not d.called:
            log.warning("outbox deliveries still under way at stop", rows=self.in_flight())
            self._idle.remove(d)
            d.callback(None)

    def in_flight(self) -> int:
        """Deliveries under way on this node."""
        return sum(self._active.values())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    # -- claiming ----------------------------------------------------------------------

    def poll(self) -> Deferred[int]:
        """Claim a batch of due rows and start delivering them; fires with how many were
        claimed (their deliveries go on)."""
        self._timer = None
        now = self.now()
        local = self.in_flight() + sum(len(q) for q in self._waiting.values())
        limit = min(self._s.batch, self._s.batch * LOCAL_MAX - local)
        if limit <= 0:
            self._schedule(self._s.poll)
            return succeed(0)
        d = self._db(outbox.claim, now, self._s.lease, limit, self._skipped(now))
        d.addCallback(self._claimed)
        d.addErrback(self._claim_failed)
        d.addCallback(lambda n: (self._schedule(0 if n >= limit else self._s.poll), n)[1])
        return d

    def _skipped(self, now: datetime) -> set[str]:
        """Billers not to claim for: resting after failures, or with rows waiting here."""
        resting = {code for code, until in self._rest.items() if until > now}
        busy = {code for code, rows in self._waiting.items() if rows}
        full = {code for code, n in self._active.items() if n >= self._s.max_in_flight}
        return resting | busy | full

    def _claimed(self, rows: list[Claimed]) -> int:
        if not self._running:  # stopped while claiming: hand them back
            self._release(rows)
            return len(rows)
        for row in rows:
            self._waiting[row.biller_code].append(row)
        for code in {row.biller_code for row in rows}:
            self._start_next(code)
        return len(rows)

    def _claim_failed(self, failure: Failure) -> int:
        log.warning("outbox claim failed", error=_reason(failure.value))
        return 0

    def _schedule(self, delay: float) -> None:
        if self._running and self._timer is None:
            self._timer = self._clock.callLater(delay, self.poll)

    # -- delivering --------------------------------------------------------------------

    def _start_next(self, code: str) -> None:
        """Start ``code``'s waiting rows while it has free slots (a delivery that ends at
        once starts the next from within: the deque is shared, so this is re-entrant)."""
        rows = self._waiting.get(code)
        while rows and self._active[code] < self._s.max_in_flight:
            self._active[code] += 1
            self._deliver(rows.popleft())
        if code in self._waiting and not self._waiting[code]:
            del self._waiting[code]

    def _deliver(self, row: Claimed) -> None:
        d = maybeDeferred(self._call, row)
        d.addTimeout(self._s.lease, self._clock)  # an adapter that never answers
        d.addCallbacks(self._acknowledged, self._failed, (row,), None, (row,), None)
        d.addErrback(lambda f: log.error("outbox delivery bookkeeping failed", error=str(f)))
        d.addBoth(lambda _: self._ended(row))

    def _call(self, row: Claimed) -> Deferred[Any]:
        adapter = self._adapter_for(row.biller_code)
        if not adapter.remote:
            raise NotOnline(f"{row.biller_code} is a {adapter.kind} biller")
        if row.action == outbox.SETTLE:  # the ledger first: a posted payment stands
            d = self._db(online.posted, row.payment_id)
            d.addCallback(lambda posted: None if posted else DELIVER[row.action](adapter, row))
            return d
        return DELIVER[row.action](adapter, row)

    def _acknowledged(self, _: Any, row: Claimed) -> Deferred[Any]:
        self._failures.pop(row.biller_code, None)
        self._rest.pop(row.biller_code, None)
        metrics.OUTBOX_DELIVERIES.labels(row.biller_code, "done").inc()
        return self._finish(outbox.mark_done, row, self.now())

    def _failed(self, failure: Failure, row: Claimed) -> Deferred[Any]:
        error = failure.value
        now = self.now()
        if isinstance(error, BillerError) and not isinstance(error, TRANSIENT):
            metrics.OUTBOX_DELIVERIES.labels(row.biller_code, "parked").inc()
            log.warning(
                "outbox row parked: the biller refused it",
                biller=row.biller_code,
                action=row.action,
                payment_id=row.payment_id,
                attempts=row.attempts,
                reason=_reason(error),
            )
            return self._finish(outbox.park, row, now, _reason(error))
        metrics.OUTBOX_DELIVERIES.labels(row.biller_code, "retry").inc()
        s = self._s
        wait = backoff(row.attempts, s.backoff_base, s.backoff_cap, self._draw())
        self._rest_biller(row.biller_code, now)
        self._log_failure(row, error, wait)
        at = now + timedelta(seconds=wait)
        return self._finish(outbox.reschedule, row, now, at, _reason(error))

    def _rest_biller(self, code: str, now: datetime) -> None:
        """No claims for ``code`` on this node for a while: its own backoff, by failures
        in a row, so a dead biller costs one probe per pause, not one call per row."""
        self._failures[code] += 1
        s = self._s
        pause = backoff(self._failures[code], s.backoff_base, s.backoff_cap, self._draw())
        self._rest[code] = now + timedelta(seconds=pause)

    def _log_failure(self, row: Claimed, error: BaseException, wait: float) -> None:
        """A line per failed attempt, but at most one per biller per ``LOG_EVERY``
        seconds (it says how many it stands for); unexpected errors at error level."""
        unexpected = not isinstance(error, BillerError)
        t = self._clock.seconds()
        last, suppressed = self._logged.get(row.biller_code, (float("-inf"), 0))
        if t - last < LOG_EVERY:
            self._logged[row.biller_code] = (last, suppressed + 1)
            return
        self._logged[row.biller_code] = (t, 0)
        (log.error if unexpected else log.warning)(
            "outbox delivery failed, will retry",
            biller=row.biller_code,
            action=row.action,
            payment_id=row.payment_id,
            attempts=row.attempts,
            retry_in=round(wait, 1),
            reason=_reason(error),
            **({"also_failed": suppressed} if suppressed else {}),
        )

    def _finish(self, how: Callable[..., bool], row: Claimed, *args: Any) -> Deferred[Any]:
        d = self._db(how, row, *args)
        d.addCallback(lambda changed: changed or self._overtaken(row))
        d.addErrback(self._not_finished, row)
        return d

    def _overtaken(self, row: Claimed) -> None:
        log.info(
            "outbox delivery ended after its lease; a later attempt decides",
            biller=row.biller_code,
            action=row.action,
            payment_id=row.payment_id,
        )

    def _not_finished(self, failure: Failure, row: Claimed) -> None:
        """The row stays claimed; after its lease it is delivered again (the biller
        answers a repeat from its idempotency key)."""
        log.warning(
            "outbox row delivered but not marked",
            biller=row.biller_code,
            payment_id=row.payment_id,
            error=_reason(failure.value),
        )

    def _ended(self, row: Claimed) -> None:
        self._active[row.biller_code] -= 1
        if not self._active[row.biller_code]:
            del self._active[row.biller_code]
        if self._running:
            self._start_next(row.biller_code)
        if not self.in_flight():
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    # -- gauges ------------------------------------------------------------------------

    def _gauges_tick(self) -> None:
        d = self.refresh_gauges()
        d.addErrback(lambda f: log.warning("outbox gauges failed", error=_reason(f.value)))
        if self._running:
            self._gauge_timer = self._clock.callLater(GAUGE_EVERY, self._gauges_tick)

    def refresh_gauges(self) -> Deferred[None]:
        """Queue depth by biller and state, and the oldest pending row's age, from the
        database (every node shows the whole queue)."""
        d = self._db(outbox.depth)
        d.addCallback(self._show, self.now())
        return d

    def _show(self, depths: list[outbox.Depth], now: datetime) -> None:
        metrics.OUTBOX_ROWS.clear()
        metrics.OUTBOX_OLDEST.clear()
        for q in depths:
            metrics.OUTBOX_ROWS.labels(q.biller_code, q.state).set(q.rows)
            if q.state == outbox.PENDING:
                age = max(0.0, (now - q.oldest).total_seconds())
                metrics.OUTBOX_OLDEST.labels(q.biller_code).set(age)


def _release_all(conn: Any, rows: list[Claimed], now: datetime) -> int:
    """Claimed rows never started: due again at once, for any node."""
    return sum(outbox.finish(conn, row, now, outbox.PENDING, now) for row in rows)
