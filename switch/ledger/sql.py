"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect (built once each)."""
    return insert_ignore_for(conn.dialect.name, table)


@cache
def insert_ignore_for(dialect: str, table: Table):  # type: ignore[no-untyped-def]
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()
