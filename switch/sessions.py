"""Sign-on state: which terminals and host links have signed on.

The state lives in the database (``sign_ons``), so a terminal that signed on
through one node or worker process may reconnect to another. Each node keeps
a short-lived memory of the terminals it found signed on, so the check costs
a database read only once per terminal per ``ttl`` seconds; a sign-off made
on another node therefore takes effect here within ``ttl``. Without a
database (unit tests) the state is this process's memory alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select, update

from switch.ledger import schema as s
from switch.ledger.reads import Reads
from switch.ledger.sql import insert_ignore

Terminal = tuple[str, str]  # (acquirer, terminal id); a host link's terminal id is ""
_c = s.sign_ons.c


class SignOns:
    def __init__(
        self,
        reads: Reads | None = None,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reads = reads
        self._ttl = ttl
        self._clock = clock
        self._seen: dict[Terminal, float] = {}  # terminal -> when the memory expires

    async def sign_on(self, acquirer_id: str, terminal_id: str) -> None:
        if self._reads is not None:
            await self._reads.transaction(_record, acquirer_id, terminal_id, datetime.now(UTC))
        self._remember((acquirer_id, terminal_id))

    async def sign_off(self, acquirer_id: str, terminal_id: str) -> None:
        self._seen.pop((acquirer_id, terminal_id), None)
        if self._reads is not None:
            await self._reads.transaction(_forget, acquirer_id, terminal_id)

    async def is_signed_on(self, acquirer_id: str, terminal_id: str) -> bool:
        terminal = (acquirer_id, terminal_id)
        expires = self._seen.get(terminal)
        if expires is not None and expires > self._clock():
            return True
        if self._reads is None:
            return False
        if await self._reads.shared(_is_recorded, acquirer_id, terminal_id):
            self._remember(terminal)
            return True
        self._seen.pop(terminal, None)
        return False

    def _remember(self, terminal: Terminal) -> None:
        self._seen[terminal] = self._clock() + (self._ttl if self._reads else float("inf"))


def _record(conn: Connection, acquirer_id: str, terminal_id: str, now: datetime) -> None:
    key = (_c.acquirer_id == acquirer_id) & (_c.terminal_id == terminal_id)
    if conn.execute(update(s.sign_ons).where(key).values(signed_on_at=now)).rowcount == 0:
        conn.execute(
            insert_ignore(conn, s.sign_ons).values(
                acquirer_id=acquirer_id, terminal_id=terminal_id, signed_on_at=now
            )
        )


def _forget(conn: Connection, acquirer_id: str, terminal_id: str) -> None:
    conn.execute(
        delete(s.sign_ons).where(_c.acquirer_id == acquirer_id, _c.terminal_id == terminal_id)
    )


def _is_recorded(conn: Connection, acquirer_id: str, terminal_id: str) -> bool:
    query = select(_c.acquirer_id).where(
        _c.acquirer_id == acquirer_id, _c.terminal_id == terminal_id
    )
    return conn.execute(query).first() is not None
