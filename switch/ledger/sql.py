"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()
