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
making its file is not claimed twice. On PostgreSQL the debts the file
changes are locked in id order first, the order every ledger batch locks
them in (switch/ledger/locks.py): a payment in flight either commits before
the import reads what it paid, or waits for the import and pays the new debt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
        cursor.copy_expert(f"COPY {_STAGE} ({', '.join(_COLUMNS)}) FROM STDIN", source)
    finally:
        cursor.close()
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
    they are read, so the file is streamed into PostgreSQL without being held."""

    def __init__(self, debts: Iterable[Debt]) -> None:
        self._lines = self._encode(debts)
        self._buffer = b""
        self.count = 0

    def _encode(self, debts: Iterable[Debt]) -> Iterator[bytes]:
        for d in debts:
            self.count += 1
            fields = (d.line, d.account, d.name, d.period, d.invoice, d.amount, d.due)
            yield ("\t".join(_copy_text(v) for v in fields) + "\n").encode()

    def read(self, size: int = -1) -> bytes:
        parts, have = [self._buffer], len(self._buffer)
        while size < 0 or have < size:
            line = next(self._lines, None)
            if line is None:
                break
            parts.append(line)
            have += len(line)
        data = b"".join(parts)
        if size < 0:
            self._buffer = b""
            return data
        self._buffer = data[size:]
        return data[:size]

    def readline(self, size: int = -1) -> bytes:  # psycopg2 only calls read
        return self.read(size)


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    return str(value).translate(_ESCAPES)


def first_duplicate(conn: Connection) -> DuplicateDebt | None:
    row = conn.exec_driver_sql(
        f"SELECT MAX(line), account, period FROM {_STAGE} GROUP BY account, period"
        " HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 1"
    ).first()
    return DuplicateDebt(int(row[0]), row[1], row[2]) if row else None


# The newest line naming an account gives its holder's name.
_CUSTOMERS = {
    "postgresql": (
        "INSERT INTO customers (biller_code, account, name)"
        f" SELECT DISTINCT ON (account) :biller, account, name FROM {_STAGE}"
        " ORDER BY account, line DESC"
        " ON CONFLICT (biller_code, account) DO UPDATE SET name = excluded.name"
        " WHERE customers.name <> excluded.name"
    ),
    "sqlite": (
        "INSERT INTO customers (biller_code, account, name)"
        f" SELECT :biller, account, name FROM (SELECT account, name, MAX(line) FROM {_STAGE}"
        " GROUP BY account) WHERE true"
        " ON CONFLICT (biller_code, account) DO UPDATE SET name = excluded.name"
        " WHERE customers.name <> excluded.name"
    ),
}

_STAGED = f"EXISTS (SELECT 1 FROM {_STAGE} s WHERE s.account = d.account AND s.period = d.period)"
# PostgreSQL: the rows this file changes, locked in id order (the ledger's order).
_LOCK = (
    "SELECT count(*) FROM (SELECT d.id FROM debts d WHERE d.biller_code = :biller"
    " AND ({which}) ORDER BY d.id FOR UPDATE) AS locked"
)

# What payments made since the file was generated still hold of each debt.
_PAID_SINCE = (
    "SELECT a.debt_id, SUM(a.amount - a.reversed_amount) AS amount"
    " FROM allocations a JOIN payments p ON p.id = a.payment_id"
    " WHERE p.biller_code = :biller AND p.created_at >= :generated GROUP BY a.debt_id"
)
_OPEN = (
    "CASE WHEN s.amount - COALESCE(pd.amount, 0) > 0 THEN s.amount - COALESCE(pd.amount, 0)"
    " ELSE 0 END"
)
_ORIGINAL = "CASE WHEN s.amount > 0 THEN s.amount ELSE d.amount_original END"
_CHANGE = (
    f"WITH paid AS ({_PAID_SINCE}),"
    " changes AS (SELECT d.id, {original} AS original, {open} AS open, s.invoice, s.due"
    f" FROM debts d JOIN {_STAGE} s ON s.account = d.account AND s.period = d.period"
    " LEFT JOIN paid pd ON pd.debt_id = d.id WHERE d.biller_code = :biller)"
    " UPDATE debts SET amount_original = c.original, amount_open = c.open,"
    " invoice = c.invoice, due = c.due FROM changes c WHERE debts.id = c.id"
    " AND (debts.amount_original, debts.amount_open, debts.invoice, debts.due)"
    " {distinct} (c.original, c.open, c.invoice, c.due)"
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
    "UPDATE debts SET amount_open = 0 WHERE biller_code = :biller AND amount_open > 0"
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
    conn.execute(text(_CUSTOMERS[dialect]), params)
    if is_postgres(conn):
        which = f"d.amount_open > 0 OR {_STAGED}" if mode == "full" else _STAGED
        conn.execute(text(_LOCK.format(which=which)), params)
    since = text(_CHANGE.format(distinct=_DISTINCT[dialect])).bindparams(
        bindparam("generated", type_=DateTime(timezone=True))
    )
    changed = _changed_rows(conn, conn.execute(since, {**params, "generated": generated}))
    new = conn.execute(text(_NEW), params).rowcount
    closed = conn.execute(text(_CLOSE), params).rowcount if mode == "full" else 0
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
