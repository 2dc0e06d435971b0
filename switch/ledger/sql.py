"""Small SQL helpers that differ between SQLite and PostgreSQL.

The ledger writer's bulk statements are plain SQL text run with ``exec_driver_sql``:
the writer thread holds the GIL, and compiling Core statements and binding them
row by row (dicts, insertmanyvalues, RETURNING) cost it more than the database
work. ``exec_driver_sql`` still fires SQLAlchemy's events, wraps DBAPI errors and
invalidates dead connections.

PostgreSQL gets one statement per batch, its rows sent as a single JSON array
parameter: psycopg2 quotes each parameter in turn (0.5-2 us apiece, dozens a
payment), while ``json`` encodes a row in well under a microsecond. SQLite gets
``executemany``: it binds in C and runs in process, so a statement per row costs
nothing more. Ids are taken up front (``next_ids``), so no insert needs RETURNING.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Hashable, Sequence
from datetime import date
from functools import cache
from itertools import chain
from typing import Any

from sqlalchemy import Column, Connection, Date, DateTime, String, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect (built once each)."""
    return insert_ignore_for(conn.dialect.name, table)


@cache
def insert_ignore_for(dialect: str, table: Table):  # type: ignore[no-untyped-def]
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def for_update(conn: Connection) -> str:
    """`` FOR UPDATE`` where rows can be locked (SQLite's writer holds the database lock)."""
    return " FOR UPDATE" if is_postgres(conn) else ""


def _marks(conn: Connection, width: int) -> str:
    mark = "%s" if is_postgres(conn) else "?"
    return "(" + ", ".join([mark] * width) + ")"


def in_list(conn: Connection, keys: Collection[Any]) -> tuple[str, tuple[Any, ...]]:
    """SQL and parameters for ``x IN (<here>)`` over scalars, or ``(x, y) IN (<here>)`` over
    tuples, rendered as SQLAlchemy renders them (SQLite wants row values as VALUES)."""
    first = next(iter(keys))
    if not isinstance(first, tuple):
        return _marks(conn, len(keys))[1:-1], tuple(keys)
    rows = ", ".join([_marks(conn, len(first))] * len(keys))
    return (rows if is_postgres(conn) else "VALUES " + rows), tuple(chain.from_iterable(keys))


def bind(conn: Connection, column: Column[Any]) -> Callable[[Any], Any]:
    """A function giving a value as this module's statements take it for ``column``.

    Dates and times need it: SQLite keeps them as text in SQLAlchemy's format, and
    JSON (PostgreSQL's rows) has none, so they go as ISO text. The values that need
    it repeat (a batch's time, its business days): each is converted once.
    """
    if is_postgres(conn):
        process = _iso if isinstance(column.type, Date | DateTime) else None
    else:
        process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if process is None:
        return _same
    done: dict[Hashable, Any] = {}

    def convert(value: Any) -> Any:
        if value not in done:
            done[value] = process(value)
        return done[value]

    return convert


def _same(value: Any) -> Any:
    return value


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def next_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """``n`` new ids for ``table.id``, ascending, taken before the rows are inserted.

    PostgreSQL draws them from the column's sequence (safe across nodes). SQLite
    counts on from the largest id, which is what it would assign itself: the writer's
    transaction holds the database's write lock (BEGIN IMMEDIATE), and a writer without
    it fails on its stale snapshot or on the primary key rather than reuse an id.
    """
    if n <= 0:
        return []
    if is_postgres(conn):
        ids = conn.exec_driver_sql(
            "SELECT array_agg(nextval(%s)) FROM generate_series(1, %s)",
            (f"{table.name}_id_seq", n),
        ).scalar_one()
        return sorted(ids)
    last = conn.exec_driver_sql(f"SELECT max(id) FROM {table.name}").scalar() or 0
    return list(range(last + 1, last + n + 1))


# Non-ASCII text goes as itself (psycopg2 encodes it as it would a parameter), not as
# \u escapes, which only a UTF8 server could decode.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


@cache
def _json_rows(columns: tuple[Column[Any], ...], names: tuple[str, ...]) -> str:
    """PostgreSQL: ``SELECT`` of a JSON array of rows (the one parameter) as typed columns.

    Strings stay text and take the column's own type on assignment, so an over-long
    value fails as it would from a parameter (a cast to VARCHAR(n) would cut it)."""
    dialect = postgresql.psycopg2.dialect()
    fields = []
    for i, (column, name) in enumerate(zip(columns, names, strict=True)):
        field = f"e->>{i}"
        if not isinstance(column.type, String):
            field = f"CAST({field} AS {column.type.compile(dialect=dialect)})"
        fields.append(f"{field} AS {name}")
    return f"SELECT {', '.join(fields)} FROM json_array_elements(CAST(%s AS json)) AS r(e)"


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    tail: str = "",
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order, dates through ``bind``); returns how
    many went in (``tail``, e.g. ``ON CONFLICT DO NOTHING``, may skip some)."""
    if not rows:
        return 0
    return conn.exec_driver_sql(*_insert(conn, table, columns, rows, tail)).rowcount


def _insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    tail: str,
) -> tuple[str, Any]:
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) "
    if is_postgres(conn):
        select = _json_rows(tuple(table.c[name] for name in columns), tuple(columns))
        return head + select + tail, (_JSON.encode(rows),)
    marks = ", ".join(["?"] * len(columns))
    return f"{head}VALUES ({marks}){tail}", list(rows)


def update_rows(
    conn: Connection,
    column: Column[Any],
    value: str,
    keys: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """``UPDATE ... SET column = value`` for each row ``(*keys, new)``; ``value`` names the
    row's ``new`` as ``{new}``, e.g. ``"funds + {new}"``. Keys must be unique; rows are
    applied in key order (the order they get locked in)."""
    if rows:
        conn.exec_driver_sql(*_update(conn, column, value, keys, rows))


def _update(
    conn: Connection,
    column: Column[Any],
    value: str,
    keys: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> tuple[str, Any]:
    table = column.table
    rows = sorted(rows)
    if is_postgres(conn):
        select = _json_rows((*(table.c[k] for k in keys), column), (*keys, "new_value"))
        match = " AND ".join(f"{table.name}.{k} = v.{k}" for k in keys)
        text = (
            f"UPDATE {table.name} SET {column.name} = {value.format(new='v.new_value')}"
            f" FROM ({select}) AS v WHERE {match}"
        )
        return text, (_JSON.encode(rows),)
    match = " AND ".join(f"{k} = ?{i}" for i, k in enumerate(keys, 1))
    new = f"?{len(keys) + 1}"
    text = f"UPDATE {table.name} SET {column.name} = {value.format(new=new)} WHERE {match}"
    return text, list(rows)


class Writes:
    """A stage's inserts and updates, sent to the database together.

    At one request in flight per terminal a batch holds a handful of orders, and each
    statement is a round trip the whole batch waits for: a stage's writes (payments,
    allocations, debts, journal, entries, request rows, identities) were eight of them.
    PostgreSQL gets them as one statement, each write a data-modifying ``WITH`` query
    (they run once each, to completion; foreign keys are checked at the statement's
    end, so a row may refer to one inserted beside it). They must not touch one row
    twice, which a stage never does: one update per table, each row once. SQLite runs
    each at once (in process, a statement costs no round trip) and so keeps its order.

    ``insert(..., counted=True)`` asks how many rows went in (``ON CONFLICT DO
    NOTHING`` may skip some): ``run`` returns those counts, in the order asked.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._postgres = is_postgres(conn)
        self._parts: list[tuple[str, Any, bool]] = []  # PostgreSQL: (sql, params, counted)
        self._counts: list[int] = []  # SQLite: counts as they come

    def insert(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        tail: str = "",
        counted: bool = False,
    ) -> None:
        if not rows:
            if counted:
                self._add(None, counted)
            return
        self._add(_insert(self._conn, table, columns, rows, tail), counted)

    def update(
        self,
        column: Column[Any],
        value: str,
        keys: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        if rows:
            self._add(_update(self._conn, column, value, keys, rows), False)

    def _add(self, statement: tuple[str, Any] | None, counted: bool) -> None:
        if statement is None:
            if self._postgres:
                self._parts.append(("", (), counted))
            else:
                self._counts.append(0)
            return
        if self._postgres:
            self._parts.append((*statement, counted))
            return
        rowcount = self._conn.exec_driver_sql(*statement).rowcount
        if counted:
            self._counts.append(rowcount)

    def run(self) -> list[int]:
        """Send what was gathered (PostgreSQL); the counts asked for, in order."""
        if not self._postgres:
            counts, self._counts = self._counts, []
            return counts
        parts, self._parts = self._parts, []
        sent = [p for p in parts if p[0]]
        if len(sent) == 1 and not any(counted for _, _, counted in parts):
            self._conn.exec_driver_sql(sent[0][0], sent[0][1])
            return []
        if not sent:
            return [0 for _, _, counted in parts if counted]
        return self._together(parts)

    def _together(self, parts: list[tuple[str, Any, bool]]) -> list[int]:
        ctes: list[str] = []
        counts: list[str] = []
        params: list[Any] = []
        for text, given, counted in parts:
            if not text:
                counts.append("0")
                continue
            name = f"w{len(ctes)}"
            ctes.append(f"{name} AS ({text}{' RETURNING 1' if counted else ''})")
            if counted:
                counts.append(f"(SELECT count(*) FROM {name})")
            params.extend(given)
        select = ", ".join(counts) if counts else "1"
        row = self._conn.exec_driver_sql(f"WITH {', '.join(ctes)} SELECT {select}", tuple(params))
        return [int(n) for n in row.one()] if counts else []


def next_ids_of(conn: Connection, wanted: Sequence[tuple[Table, int]]) -> list[list[int]]:
    """``next_ids`` for several tables at once: on PostgreSQL one statement for all."""
    if not is_postgres(conn) or sum(1 for _, n in wanted if n > 0) < 2:
        return [next_ids(conn, table, n) for table, n in wanted]
    draws = ", ".join("ARRAY(SELECT nextval(%s) FROM generate_series(1, %s))" for _ in wanted)
    params = tuple(x for table, n in wanted for x in (f"{table.name}_id_seq", max(n, 0)))
    row = conn.exec_driver_sql(f"SELECT {draws}", params).one()
    return [sorted(ids) for ids in row]
