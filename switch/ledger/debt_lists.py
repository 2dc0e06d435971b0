"""Applying a held biller's debt list to ``debts`` and ``customers``, set-based.

The debts are first staged in a temporary table (PostgreSQL: ``COPY`` from the
streamed file; SQLite: ``executemany`` in batches), then applied by a handful
of statements over the whole set, never a statement per debt: so a million
debts take seconds and memory stays bounded. Everything runs in the caller's
transaction: a file is applied whole or not at all.

What an amount in the file means: what the account owed on that debt at the
file's ``generated`` time. Payments the switch took on the debt since then
(allocations of payments made at or after ``generated``, less what was
reversed of them) are taken off, so a payment committed while the biller was
making its file is not claimed twice. A debt's ``amount_original`` is kept at
its open amount plus what its allocations hold (the ledger's invariant), so
closing a debt leaves it at what was paid on it here. On PostgreSQL the debts the file
changes are locked in id order first, the order every ledger batch locks
them in (switch/ledger/locks.py): a payment in flight either commits before
the import reads what it paid, or waits for the import and pays the new debt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, text

from switch.debt_file import Debt
from switch.ledger.sql import is_postgres

BATCH = 5000  # rows per executemany on SQLite
_STAGE = "debt_stage"
_COLUMNS = ("line", "account", "name", "period", "invoice", "amount", "due")


@dataclass(frozen=True)
class Applied:
    """What a list changed: debts made, changed (amount, invoice or due date) and closed."""

    lines: int
    new: int
    changed: int
    closed: int


class DuplicateDebt(ValueError):
    """Two lines of one file name the same debt (account and period)."""

    def __init__(self, line: int, account: str, period: str) -> None:
        super().__init__(f"account {account} period {period} listed twice")
        self.line = line


def stage(conn: Connection, debts: Iterable[Debt]) -> int:
    """The file's debts into a temporary table of this transaction; returns how many."""
    if is_postgres(conn):
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_STAGE} (line BIGINT, account TEXT, name TEXT,"
            " period TEXT, invoice TEXT, amount BIGINT, due DATE) ON COMMIT DROP"
        )
        return _copy(conn, debts)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{_STAGE}")
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {_STAGE} (line INTEGER, account TEXT, name TEXT,"
        " period TEXT, invoice TEXT, amount INTEGER, due TEXT)"
    )
    return _insert_batches(conn, debts)


def _copy(conn: Connection, debts: Iterable[Debt]) -> int:
    source = _CopySource(debts)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        sql = f"COPY {_STAGE} ({', '.join(_COLUMNS)}) FROM STDIN"
        cursor.copy_expert(sql, source, size=1 << 16)
    finally:
        cursor.close()
    # The index keeps every join with the staged list cheap whatever the planner thinks
    # of ``debts`` (its statistics may predate a million new rows).
    conn.exec_driver_sql(f"CREATE INDEX ON {_STAGE} (account, period)")
    conn.exec_driver_sql(f"ANALYZE {_STAGE}")
    return source.count


def _insert_batches(conn: Connection, debts: Iterable[Debt]) -> int:
    sql = f"INSERT INTO {_STAGE} VALUES (?, ?, ?, ?, ?, ?, ?)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    count = 0
    rows = (
        (d.line, d.account, d.name, d.period, d.invoice, d.amount, d.due and d.due.isoformat())
        for d in debts
    )
    try:
        while batch := list(islice(rows, BATCH)):
            cursor.executemany(sql, batch)
            count += len(batch)
    finally:
        cursor.close()
    conn.exec_driver_sql(f"CREATE INDEX temp.ix_{_STAGE} ON {_STAGE} (account, period)")
    return count


class _CopySource:
    """A file-like object ``copy_expert`` reads: the debts as COPY text lines, made as
    they are read (a batch at a time), so the file streams into PostgreSQL unheld."""

    def __init__(self, debts: Iterable[Debt]) -> None:
        self._debts = iter(debts)
        self._buffer = b""
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            batch = list(islice(self._debts, 1000))
            if not batch:
                break
            self.count += len(batch)
            self._buffer += "".join(map(_copy_line, batch)).encode()
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readline(self, size: int = -1) -> bytes:  # psycopg2 only calls read
        return self.read(size)


def _copy_line(d: Debt) -> str:
    """COPY's text format; only the name can hold a backslash (the file's other values
    are checked against patterns without one, tabs and newlines were folded to spaces)."""
    invoice = d.invoice if d.invoice is not None else "\\N"
    due = d.due.isoformat() if d.due is not None else "\\N"
    name = d.name.replace("\\", "\\\\")
    return f"{d.line}\t{d.account}\t{name}\t{d.period}\t{invoice}\t{d.amount}\t{due}\n"


def first_duplicate(conn: Connection) -> DuplicateDebt | None:
    row = conn.exec_driver_sql(
        f"SELECT MAX(line), account, period FROM {_STAGE} GROUP BY account, period"
        " HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 1"
    ).first()
    return DuplicateDebt(int(row[0]), row[1], row[2]) if row else None


# Holders' names: the newest line naming an account gives its holder's name; names that
# changed are updated, accounts not known yet added (a plain insert: no ON CONFLICT).
_NAMES = {
    "postgresql": (
        f"SELECT DISTINCT ON (account) account, name FROM {_STAGE} ORDER BY account, line DESC"
    ),
    "sqlite": f"SELECT account, name, MAX(line) FROM {_STAGE} GROUP BY account",
}
_RENAME = (
    "WITH n AS ({names}) UPDATE customers SET name = n.name FROM n"
    " WHERE customers.biller_code = :biller AND customers.account = n.account"
    " AND customers.name <> n.name"
)
_NEW_CUSTOMERS = (
    "INSERT INTO customers (biller_code, account, name) SELECT :biller, n.account, n.name"
    " FROM ({names}) n WHERE NOT EXISTS (SELECT 1 FROM customers c"
    " WHERE c.biller_code = :biller AND c.account = n.account)"
)

_STAGED = f"EXISTS (SELECT 1 FROM {_STAGE} s WHERE s.account = d.account AND s.period = d.period)"
# PostgreSQL: the rows this file changes, locked in id order (the ledger's order).
_LOCK = (
    "SELECT count(*) FROM (SELECT d.id FROM debts d WHERE d.biller_code = :biller"
    " AND ({which}) ORDER BY d.id FOR UPDATE) AS locked"
)

# What payments still hold of each debt: in all, and of those made since the file was
# generated (those the biller's amount cannot know of yet).
_PAID = (
    "SELECT a.debt_id, SUM(a.amount - a.reversed_amount) AS total,"
    " SUM(CASE WHEN p.created_at >= :generated THEN a.amount - a.reversed_amount ELSE 0 END)"
    " AS since FROM allocations a JOIN payments p ON p.id = a.payment_id"
    " WHERE p.biller_code = :biller GROUP BY a.debt_id"
)
_OPEN = (
    "CASE WHEN s.amount - COALESCE(pd.since, 0) > 0 THEN s.amount - COALESCE(pd.since, 0)"
    " ELSE 0 END"
)
# The ledger's invariant stays true: a debt's open amount is its original amount less what
# its allocations hold (tests/ledger/ledger_support.py), so the original is set to match.
_ORIGINAL = f"({_OPEN}) + COALESCE(pd.total, 0)"
# Only the rows whose values change are written (a list sent again unchanged writes nothing).
_CHANGE = (
    f"WITH paid AS ({_PAID}),"
    " computed AS (SELECT d.id, d.amount_original AS was_original, d.amount_open AS was_open,"
    " d.invoice AS was_invoice, d.due AS was_due, {original} AS original, {open} AS open,"
    f" s.invoice, s.due FROM debts d JOIN {_STAGE} s ON s.account = d.account"
    " AND s.period = d.period LEFT JOIN paid pd ON pd.debt_id = d.id"
    " WHERE d.biller_code = :biller),"
    " changes AS (SELECT id, original, open, invoice, due FROM computed"
    " WHERE (was_original, was_open, was_invoice, was_due) {distinct}"
    " (original, open, invoice, due))"
    " UPDATE debts SET amount_original = c.original, amount_open = c.open,"
    " invoice = c.invoice, due = c.due FROM changes c WHERE debts.id = c.id"
).format(original=_ORIGINAL, open=_OPEN, distinct="{distinct}")
_DISTINCT = {"postgresql": "IS DISTINCT FROM", "sqlite": "IS NOT"}
_NEW = (
    "INSERT INTO debts (biller_code, account, period, invoice, amount_original, amount_open,"
    f" due) SELECT :biller, s.account, s.period, s.invoice, s.amount, s.amount, s.due"
    f" FROM {_STAGE} s WHERE s.amount > 0 AND NOT EXISTS (SELECT 1 FROM debts d"
    " WHERE d.biller_code = :biller AND d.account = s.account AND d.period = s.period)"
    " ORDER BY s.line"
)
_CLOSE = (
    "UPDATE debts SET amount_original = amount_original - amount_open, amount_open = 0"
    " WHERE biller_code = :biller AND amount_open > 0"
    f" AND NOT EXISTS (SELECT 1 FROM {_STAGE} s WHERE s.account = debts.account"
    " AND s.period = debts.period)"
)


def apply_staged(
    conn: Connection, biller: str, mode: str, generated: datetime, lines: int
) -> Applied:
    """The staged list applied: customers named, debts locked, changed, made and (``full``)
    the biller's open debts the file does not list closed."""
    dialect = conn.dialect.name
    params = {"biller": biller}
    names = _NAMES[dialect]
    conn.execute(text(_RENAME.format(names=names)), params)
    conn.execute(text(_NEW_CUSTOMERS.format(names=names)), params)
    if is_postgres(conn):
        which = f"d.amount_open > 0 OR {_STAGED}" if mode == "full" else _STAGED
        conn.execute(text(_LOCK.format(which=which)), params)
    since = text(_CHANGE.format(distinct=_DISTINCT[dialect])).bindparams(
        bindparam("generated", type_=DateTime(timezone=True))
    )
    changed = _changed_rows(conn, conn.execute(since, {**params, "generated": generated}))
    # Closed before the new debts go in: the statement then looks at the rows it may close.
    closed = conn.execute(text(_CLOSE), params).rowcount if mode == "full" else 0
    new = conn.execute(text(_NEW), params).rowcount
    return Applied(lines, new, changed, closed)


def _changed_rows(conn: Connection, result: Any) -> int:
    """Rows an UPDATE changed (Python's sqlite3 says -1 for a statement led by WITH)."""
    if result.rowcount >= 0:
        return int(result.rowcount)
    return int(conn.exec_driver_sql("SELECT changes()").scalar_one())


def drop_stage(conn: Connection) -> None:
    """SQLite keeps a temporary table for the connection's life: gone before it is reused
    (PostgreSQL drops it at commit)."""
    if not is_postgres(conn):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{_STAGE}")
