"""Retention: rows that identify requests are deleted once older than a number of days.

DE 7 (MMDDhhmmss) has no year: a request's identity names the year nearest to its
business day. Kept for less than 300 days, a stored identity can never be taken for a
request of another year, so a retransmission is recognised and a new transaction a
year later is not answered from an old row. Kept longer, it could. So request rows (and
any other table of identities) are purged after ``[ledger] request_retention_days``.

The purge runs off the hot path, on the read pool, every ``[ledger] purge_every``
seconds, in chunks of ``CHUNK`` rows per transaction, so it never holds a lock (SQLite's
write lock) for long. What goes is found by an index on the time column. A reversal of a
payment older than the retention no longer finds its original (25, or 00 for an advice).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Connection

from switch.ledger import schema as s
from switch.ledger.sql import bind, is_postgres

# (table, time column) of every table purged, one line each; the time column is indexed.
RETAINED: tuple[Column, ...] = (  # type: ignore[type-arg]
    s.requests.c.created_at,
    s.transactions.c.created_at,  # identities (identity.py): a reversal later than this gets 25
)
CHUNK = 1000  # rows deleted per transaction

# A row's physical id stands in for a key, so any table can be listed above.
_DELETE = {
    "postgresql": (
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM {table} WHERE {column} < %s LIMIT {chunk}))"
    ),
    "sqlite": (
        "DELETE FROM {table} WHERE rowid IN ("
        "SELECT rowid FROM {table} WHERE {column} < ? LIMIT {chunk})"
    ),
}


def purge_chunk(conn: Connection, column: Column, before: datetime, chunk: int = CHUNK) -> int:  # type: ignore[type-arg]
    """Delete up to ``chunk`` rows of ``column``'s table older than ``before``; returns how
    many went (fewer than ``chunk``: nothing older is left)."""
    sql = _DELETE["postgresql" if is_postgres(conn) else "sqlite"].format(
        table=column.table.name, column=column.name, chunk=int(chunk)
    )
    return conn.exec_driver_sql(sql, (bind(conn, column)(before),)).rowcount
