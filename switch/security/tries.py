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
orders do: while one transaction is out, asks queue, and the next takes them all (the
reservations of distinct cards in one statement, the settlements a statement per
card). So a PIN payment costs a share of two small transactions (its reservation, its
release), never one of its own, and waits only for the first.

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


# Reserved tries count while pending_until is ahead (see the module docstring).
_LIVE = "(CASE WHEN pending_until > :now THEN pending ELSE 0 END)"
_RESERVE = (
    f"UPDATE pin_tries SET pending = {_LIVE} + 1, pending_until = :until"
    " WHERE pan_hash IN {cards} AND tries + " + _LIVE + " < :limit RETURNING pan_hash"
)
# PostgreSQL: every node's batches lock their rows in one order, so none deadlock.
_LOCKED = "(SELECT pan_hash FROM pin_tries WHERE pan_hash IN :cards ORDER BY pan_hash FOR UPDATE)"
_OPEN = "SELECT pan_hash FROM pin_tries WHERE pan_hash IN :cards AND tries < :limit"
_SETTLE = (
    "UPDATE pin_tries SET tries = CASE WHEN :right > 0 THEN 0 ELSE tries END + :wrong,"
    " pending = CASE WHEN pending > :settled THEN pending - :settled ELSE 0 END"
    " WHERE pan_hash = :card RETURNING tries"
)


def _statement(sql: str) -> Any:
    return text(sql).bindparams(bindparam("cards", expanding=True))


_STATEMENTS = {
    (postgres, name): _statement(sql.replace("{cards}", _LOCKED if postgres else ":cards"))
    for postgres in (True, False)
    for name, sql in (("reserve", _RESERVE), ("lock", _LOCKED[1:-1]), ("open", _OPEN))
}


def apply_asks(
    conn: Connection, asks: list[tuple[str, str]], limit: int, now: int, hold: int
) -> list[Any]:
    """One transaction for a batch of ``(kind, pan_hash)``: settlements first (a wrong try
    gets the wrong tries counted up to it), then reservations in arrival order (True,
    False for a blocked card, BUSY). Each round of reservations is one statement over
    distinct cards; a card asked for twice is asked again in the next round."""
    results: list[Any] = [None] * len(asks)
    reserves = [i for i, (kind, _) in enumerate(asks) if kind == RESERVE]
    cards = {card for _, card in asks}
    several_statements = len(reserves) < len(asks) or len({asks[i][1] for i in reserves}) < len(
        reserves
    )
    if is_postgres(conn) and len(cards) > 1 and several_statements:
        conn.execute(_STATEMENTS[True, "lock"], {"cards": sorted(cards)})
    _settle(conn, asks, results, limit)
    refused: dict[str, Any] = {}
    while reserves:
        asked, reserves, part, seen = reserves, [], [], set()
        for i in asked:
            card = asks[i][1]
            if card in refused:
                results[i] = refused[card]
            elif card in seen:
                reserves.append(i)
            else:
                part.append(i)
                seen.add(card)
        refused |= _reserve(conn, [asks[i][1] for i in part], limit, now, hold)
        for i in part:
            results[i] = refused.get(asks[i][1], True)
    return results


def _reserve(conn: Connection, cards: list[str], limit: int, now: int, hold: int) -> dict:
    """Reserve a try on each card; returns the refused ones, each False (blocked) or BUSY."""
    if not cards:
        return {}
    postgres = is_postgres(conn)
    params = {"cards": cards, "now": now, "until": now + hold, "limit": limit}
    granted = {row[0] for row in conn.execute(_STATEMENTS[postgres, "reserve"], params)}
    refused = [card for card in cards if card not in granted]
    if not refused:
        return {}
    still_open = {
        row[0]
        for row in conn.execute(_STATEMENTS[postgres, "open"], {"cards": refused, "limit": limit})
    }
    return {card: BUSY if card in still_open else False for card in refused}


def _settle(conn: Connection, asks: list[tuple[str, str]], results: list[Any], limit: int) -> None:
    """Count the wrong tries, release the right ones (resetting the count: wrong tries
    settled with a right one count after it) and give back the undecided ones, a
    statement per card. Each wrong try's result is the count with it."""
    by_card: dict[str, list[int]] = {}
    for i, (kind, card) in enumerate(asks):
        if kind != RESERVE:
            by_card.setdefault(card, []).append(i)
    for card, mine in sorted(by_card.items()):
        wrong = [i for i in mine if asks[i][0] == WRONG]
        right = sum(1 for i in mine if asks[i][0] == RIGHT)
        params = {"wrong": len(wrong), "right": right, "settled": len(mine), "card": card}
        tries = conn.execute(text(_SETTLE), params).scalar()
        after = limit if tries is None else tries  # the card is gone: nothing more to try
        for n, i in enumerate(wrong):
            results[i] = after - len(wrong) + n + 1


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
