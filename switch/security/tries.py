"""PIN tries in their own table: reserved before the HSM verifies, counted after, batched.

The card's ``pin_tries`` row is the one truth for every node. A try is reserved by one
conditional UPDATE (``tries`` + the live ``pending`` < limit), so requests in flight, on
one connection or on several nodes, get at most the tries the card has left between
them: a card blocked on one node is blocked on all at once. A wrong PIN moves its try
from ``pending`` to ``tries``, committed before its 55 or 75 leaves; a right PIN's
try is released and the wrong tries reset, while its payment goes to the ledger (not
held until the ledger commits, which would let a card have only ``limit`` payments
in flight); a try nobody decided (the HSM failed) is given back. The table is not
the card row: the ledger locks that row until its batch commits to pay from the
wallet, and reservations on it took turns with the ledger's batches, each waiting
for the other's commit. Nothing else locks ``pin_tries``.

What the requests in flight ask goes to the database together, as the ledger writer's
orders do: while one transaction is out, asks queue, and the next takes them all: the
batch's rows read under lock, decided in Python, written back in one statement,
however many asks and cards. So a PIN payment costs a share of two small
transactions (its reservation, its release), never one of its own, and waits only
for the first.

A card whose tries left are all in flight (wrong tries and pending reach the limit,
the wrong tries alone do not) is not blocked: the next request for it waits for a try
to come back, asked again with each later transaction, and gets 96 if none comes back
before its deadline.

A node that dies (or a database that never answers) leaves its reservations on the
row. They count until ``pending_until`` (``hold`` seconds after the card's last
reservation: longer than any try takes to be decided), after
which the next reservation counts the tries in flight from zero again. `billswitch
cards reset-tries` clears them at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from switch.errors import SystemFailure
from switch.ledger.sql import is_postgres

RESERVE, WRONG, RIGHT, UNDECIDED = "reserve", "wrong", "right", "undecided"
BUSY = "busy"  # a reservation's result: every try left is in flight, ask again


class TriesInFlight(SystemFailure):
    """Every try the card has left was being verified until the request's deadline."""


# PostgreSQL: the batch's rows locked in one order (every node's batches: none deadlock),
# read, decided here and written back in one statement. Both texts are fixed, the cards
# and their figures sent as arrays: nothing is built or compiled per batch (a statement
# made for each batch's size cost the node a fifth of its CPU per PIN payment).
_PG_READ = (
    "SELECT pan_hash, tries, pending, pending_until FROM pin_tries"
    " WHERE pan_hash = ANY(%(cards)s) ORDER BY pan_hash FOR UPDATE"
)
_PG_WRITE = (
    "UPDATE pin_tries SET tries = v.tries, pending = v.pending, pending_until = v.until"
    " FROM unnest(%(cards)s::varchar[], %(tries)s::int[], %(pending)s::int[],"
    " %(until)s::bigint[]) AS v(card, tries, pending, until)"
    " WHERE pin_tries.pan_hash = v.card"
)
# SQLite: a first write takes the database's write lock before the read (a read first
# could not become a write after another connection's commit).
_SQLITE_READ = text(
    "SELECT pan_hash, tries, pending, pending_until FROM pin_tries"
    " WHERE pan_hash IN :cards ORDER BY pan_hash"
).bindparams(bindparam("cards", expanding=True))
_TAKE_WRITE_LOCK = text(
    "UPDATE pin_tries SET pending = pending WHERE pan_hash IN :cards"
).bindparams(bindparam("cards", expanding=True))
_SQLITE_WRITE = (
    "WITH v(card, tries, pending, pending_until) AS (VALUES {rows})"
    " UPDATE pin_tries SET tries = v.tries, pending = v.pending,"
    " pending_until = v.pending_until FROM v WHERE pin_tries.pan_hash = v.card"
)


@dataclass
class _Row:
    """A card's tries as read (locked) in the batch's transaction, and as decided."""

    tries: int
    pending: int
    until: int


def apply_asks(
    conn: Connection, asks: list[tuple[str, str]], limit: int, now: int, hold: int
) -> list[Any]:
    """One transaction for a batch of ``(kind, pan_hash)``: settlements first (a wrong try
    gets the wrong tries counted up to it), then reservations in arrival order (True,
    False for a blocked card, BUSY). Two statements (three on SQLite) whatever the batch:
    the cards' rows read under lock, decided here, written back in one statement."""
    cards = sorted({card for _, card in asks})
    postgres = is_postgres(conn)
    if postgres:
        found = conn.exec_driver_sql(_PG_READ, {"cards": cards})
    else:
        conn.execute(_TAKE_WRITE_LOCK, {"cards": cards})
        found = conn.execute(_SQLITE_READ, {"cards": cards})
    rows = {card: _Row(tries, pending, until) for card, tries, pending, until in found}
    before = {card: (r.tries, r.pending, r.until) for card, r in rows.items()}
    results: list[Any] = [None] * len(asks)
    _settle(rows, asks, results, limit)
    _reserve(rows, asks, results, limit, now, hold)
    changed = [(c, r) for c, r in rows.items() if (r.tries, r.pending, r.until) != before[c]]
    if changed:
        (_write_postgres if postgres else _write_sqlite)(conn, changed)
    return results


def _settle(
    rows: dict[str, _Row], asks: list[tuple[str, str]], results: list[Any], limit: int
) -> None:
    """Count the wrong tries, release the right ones (resetting the count: wrong tries
    settled with a right one count after it) and give back the undecided ones. Each
    wrong try's result is the count with it (the limit for a card without a row)."""
    by_card: dict[str, list[int]] = {}
    for i, (kind, card) in enumerate(asks):
        if kind != RESERVE:
            by_card.setdefault(card, []).append(i)
    for card, mine in by_card.items():
        wrong = [i for i in mine if asks[i][0] == WRONG]
        row = rows.get(card)
        if row is not None:
            right = any(asks[i][0] == RIGHT for i in mine)
            row.tries = (0 if right else row.tries) + len(wrong)
            row.pending = max(row.pending - len(mine), 0)
        after = limit if row is None else row.tries
        for n, i in enumerate(wrong):
            results[i] = after - len(wrong) + n + 1


def _reserve(
    rows: dict[str, _Row],
    asks: list[tuple[str, str]],
    results: list[Any],
    limit: int,
    now: int,
    hold: int,
) -> None:
    """A try for each reservation, in arrival order, while the card's wrong tries and
    those in flight (reserved before ``pending_until``) stay below the limit; the rest
    False (the card is blocked, or has no row) or BUSY (every try left is in flight)."""
    for i, (kind, card) in enumerate(asks):
        if kind != RESERVE:
            continue
        row = rows.get(card)
        if row is None or row.tries >= limit:
            results[i] = False
            continue
        live = row.pending if row.until > now else 0
        if row.tries + live >= limit:
            results[i] = BUSY
            continue
        row.pending, row.until = live + 1, now + hold
        results[i] = True


def _write_postgres(conn: Connection, changed: list[tuple[str, _Row]]) -> None:
    """The decided rows in one statement, as arrays."""
    conn.exec_driver_sql(
        _PG_WRITE,
        {
            "cards": [card for card, _ in changed],
            "tries": [row.tries for _, row in changed],
            "pending": [row.pending for _, row in changed],
            "until": [row.until for _, row in changed],
        },
    )


def _write_sqlite(conn: Connection, changed: list[tuple[str, _Row]]) -> None:
    """The decided rows in one statement."""
    marks = ", ".join(f"(:c{n}, :t{n}, :p{n}, :u{n})" for n in range(len(changed)))
    params: dict[str, Any] = {}
    for n, (card, row) in enumerate(changed):
        params |= {f"c{n}": card, f"t{n}": row.tries, f"p{n}": row.pending, f"u{n}": row.until}
    conn.execute(text(_SQLITE_WRITE.format(rows=marks)), params)


@dataclass
class _Ask:
    kind: str
    card: str
    deferred: Deferred[Any]
    expires: float = float("inf")  # time.monotonic(): a waiting reservation gives up then


class PinTries:
    """The node's asks about PIN tries, batched into one transaction at a time.

    ``run`` runs ``apply_asks`` in a committed transaction off the reactor
    (``Reads.transaction``); ``wait`` is how long asks that found every try in flight
    wait before being asked again when nothing else comes.
    """

    def __init__(
        self,
        run: Callable[..., Deferred[list[Any]]],
        call_later: Callable[..., Any],
        limit: int,
        hold: float,
        wait: float = 0.005,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._run = run
        self._call_later = call_later
        self._limit = limit
        self._hold = max(int(hold), 1)
        self._wait = wait
        self._clock = clock
        self._queue: list[_Ask] = []
        self._waiting: list[_Ask] = []
        self._out = False
        self._timer: Any = None

    def reserve(self, card: str, deadline: float) -> Deferred[bool]:
        """A try for ``card``: True once reserved, False if the card is blocked; fails
        with 96 if every try left stays in flight until ``deadline`` (time.monotonic())."""
        return self._ask(_Ask(RESERVE, card, Deferred(), deadline))

    def count_wrong(self, card: str) -> Deferred[int]:
        """A reserved try was a wrong PIN: count it; the wrong tries with it counted."""
        return self._ask(_Ask(WRONG, card, Deferred()))

    def count_right(self, card: str) -> Deferred[None]:
        """A reserved try was the right PIN: release it and reset the wrong tries."""
        return self._ask(_Ask(RIGHT, card, Deferred()))

    def give_back(self, card: str) -> Deferred[None]:
        """A reserved try was not decided (no verification, no payment recorded)."""
        return self._ask(_Ask(UNDECIDED, card, Deferred()))

    def _ask(self, ask: _Ask) -> Deferred[Any]:
        self._queue.append(ask)
        if not self._out:
            self._flush()
        return ask.deferred

    def _flush(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        asks, self._waiting, self._queue = self._waiting + self._queue, [], []
        now = time.monotonic()
        for late in [a for a in asks if a.expires <= now]:
            late.deferred.errback(TriesInFlight("every PIN try left in flight until the deadline"))
        asks = [a for a in asks if a.expires > now]
        if not asks:
            return
        self._out = True
        plain = [(a.kind, a.card) for a in asks]
        d = self._run(apply_asks, plain, self._limit, int(self._clock()), self._hold)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(asks,), errbackArgs=(asks,))

    def _answered(self, results: list[Any], asks: list[_Ask]) -> None:
        """Answer each ask; what their requests ask next meanwhile (a wrong PIN's count
        after a reservation) queues for the next transaction."""
        for ask, result in zip(asks, results, strict=True):
            if result == BUSY:
                self._waiting.append(ask)
            else:
                ask.deferred.callback(result)
        self._out = False
        self._next()

    def _failed(self, failure: Failure, asks: list[_Ask]) -> None:
        """The transaction failed: nothing of it happened; each ask fails with it (a
        reservation is not made, a settlement stays pending until the hold runs out)."""
        for ask in asks:
            ask.deferred.errback(failure)
        self._out = False
        self._next()

    def _next(self) -> None:
        if self._queue:
            self._flush()
        elif self._waiting and self._timer is None:
            self._timer = self._call_later(self._wait, self._flush)
