"""Retention: rows that identify requests are deleted once older than a number of days.

DE 7 (MMDDhhmmss) has no year: a request's identity names the year nearest to its
business day. Kept for less than 300 days, a stored identity can never be taken for a
request of another year, so a retransmission is recognised and a new transaction a
year later is not answered from an old row. Kept longer, it could. So request rows (and
any other table of identities) are purged after ``[ledger] request_retention_days``.

The outbox is purged after the same days, but only of rows a biller acknowledged
(``done``): a pending row is money a biller must still be told of, and a parked one
waits for an operator, so no age ever removes them. A done row's ``next_at`` is the
moment it was done (``outbox.finish``), and the outbox's (state, next_at) index finds
them.

The purge runs off the hot path, on the read pool, every ``[ledger] purge_every``
seconds, in chunks of ``CHUNK`` rows per transaction, so it never holds a lock (SQLite's
write lock) for long. What goes is found by an index on the time column. A reversal of a
payment older than the retention no longer finds its original (25, or 00 for an advice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection

from switch.ledger import schema as s
from switch.ledger.sql import bind, is_postgres


@dataclass(frozen=True)
class Retained:
    """A table purged by age: ``column`` is its time column; with ``only`` (a column and
    a value), just the rows holding that value go, whatever their age."""

    column: Column[Any]
    only: tuple[Column[Any], str] | None = None


# Every table purged, one line each; the time column is indexed (after ``only``'s column).
RETAINED: tuple[Retained, ...] = (
    Retained(s.requests.c.created_at),
    Retained(s.transactions.c.created_at),  # identities (identity.py): later reversals get 25
    Retained(s.outbox.c.next_at, (s.outbox.c.state, "done")),  # never pending or parked rows
)
CHUNK = 1000  # rows deleted per transaction

# A row's physical id stands in for a key, so any table can be listed above.
_DELETE = {
    "postgresql": (
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM {table} WHERE {only}{column} < %s LIMIT {chunk}))"
    ),
    "sqlite": (
        "DELETE FROM {table} WHERE rowid IN ("
        "SELECT rowid FROM {table} WHERE {only}{column} < ? LIMIT {chunk})"
    ),
}
_MARK = {"postgresql": "%s", "sqlite": "?"}


def purge_chunk(conn: Connection, retained: Retained, before: datetime, chunk: int = CHUNK) -> int:
    """Delete up to ``chunk`` of ``retained``'s rows older than ``before``; returns how
    many went (fewer than ``chunk``: nothing older is left)."""
    dialect = "postgresql" if is_postgres(conn) else "sqlite"
    column = retained.column
    only, params = "", [bind(conn, column)(before)]
    if retained.only is not None:
        only = f"{retained.only[0].name} = {_MARK[dialect]} AND "
        params.insert(0, retained.only[1])
    sql = _DELETE[dialect].format(
        table=column.table.name, column=column.name, only=only, chunk=int(chunk)
    )
    return conn.exec_driver_sql(sql, tuple(params)).rowcount
