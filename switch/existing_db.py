"""Opening the database for operator commands: never create one, never migrate one.

``billswitch run`` and ``billswitch migrate`` create and migrate the database.
Every other command works on the database that is there: a command pointed
at the wrong ``--home`` must say so, not leave an empty database behind it.
"""

from __future__ import annotations

from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from switch.config import Settings
from switch.ledger.database import alembic_config, make_engine


class NoDatabase(Exception):
    """There is no usable billswitch database where the settings point: one line."""


def open_existing(settings: Settings, write: bool = False) -> Engine:
    """An engine on the configured database, which must exist at the current schema;
    ``write``: SQLite transactions take the write lock first (a command that changes rows
    while the switch runs then waits for the lock instead of failing on its upgrade)."""
    url = make_url(settings.db_url())
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if not path or path == ":memory:" or not _exists(path):
            raise NoDatabase(
                f"no database at {path or where} (start the switch or run 'billswitch migrate'"
                " with this --home/--db first)"
            )
    engine = make_engine(settings.db_url(), write=write)
    try:
        current = _revision(engine)
    except Exception:
        engine.dispose()
        raise
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if current is None:
        engine.dispose()
        raise NoDatabase(f"{where} holds no billswitch schema (run 'billswitch migrate' first)")
    if current != head:
        engine.dispose()
        raise NoDatabase(
            f"{where} is at schema {current}, this version needs {head} (run 'billswitch migrate')"
        )
    return engine


def _exists(path: str) -> bool:
    return Path(path).is_file()


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
