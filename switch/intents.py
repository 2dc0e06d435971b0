"""Group commit of online payments' intents (their settle rows, switch/ledger/online.py).

Every 0200 to an online biller must have its settle row committed before the
biller is called. A commit per payment would cost an fsync each; instead the
intents that arrive while one commit is under way wait and go together in the
next one (the ledger writer's rule, on the read pool's threads). Removals of
settle rows that a biller's certain refusal made pointless ride along; nobody
waits for them, and one that fails only leaves a row whose settlement finds
nothing at the biller.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from switch.errors import Decline, SystemFailure
from switch.ledger import online

log = structlog.get_logger(__name__)

Db = Callable[..., Deferred[Any]]  # run ``work(conn, *args)`` in a committed transaction
BATCH_MAX = 1000  # intents per commit, at most


class Intents:
    """``db`` runs work in a committed transaction off the reactor (``Reads.transaction``)."""

    def __init__(self, db: Db, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._clock = clock
        self._waiting: list[tuple[online.Intent, Deferred[None]]] = []
        self._drops: list[str] = []
        self._busy = False

    def arm(self, biller_code: str, payment_id: str, delay: float) -> Deferred[None]:
        """Fires once the payment's settle row is committed; fails with a 96 if it cannot
        be (then the biller must not be called)."""
        d: Deferred[None] = Deferred()
        self._waiting.append((online.Intent(biller_code, payment_id, delay), d))
        self._next()
        return d

    def drop(self, payment_id: str) -> None:
        """Remove the settle row of a payment the biller certainly does not hold."""
        self._drops.append(payment_id)
        self._next()

    def _next(self) -> None:
        if self._busy or not (self._waiting or self._drops):
            return
        batch, self._waiting = self._waiting[:BATCH_MAX], self._waiting[BATCH_MAX:]
        drops, self._drops = self._drops, []
        self._busy = True
        d = self._db(_write, [i for i, _ in batch], drops, self._clock())
        d.addBoth(self._written, batch)

    def _written(self, result: Any, batch: list[tuple[online.Intent, Deferred[None]]]) -> None:
        self._busy = False
        if isinstance(result, Failure):
            error = result.value
            log.error("intents not written: their payments fail", size=len(batch), error=str(error))
            if not isinstance(error, Decline):  # a full read queue stays 91
                error = SystemFailure("the payment's intent could not be written")
            for _, d in batch:
                d.errback(error)
        else:
            for _, d in batch:
                d.callback(None)
        self._next()


def _write(conn: Connection, intents: list[online.Intent], drops: list[str], now: datetime) -> None:
    online.arm(conn, intents, now)
    online.drop(conn, drops)
