"""Opening the database: engines for SQLite (WAL) and PostgreSQL, and migrations.

SQLite is the embedded default. It runs in WAL mode with ``synchronous=FULL`` so
that a commit is on disk before a response leaves, and with pysqlite's own
transaction handling switched off so SAVEPOINT and BEGIN IMMEDIATE behave.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def sqlite_url(home: Path) -> str:
    """The embedded database's URL under the switch's home folder."""
    return f"sqlite:///{(home / 'billswitch.db').resolve()}"


def make_engine(url: str, pool_size: int = 8, write: bool = True) -> Engine:
    """An engine with the per-dialect settings the ledger relies on.

    On SQLite the writer's transactions start with ``BEGIN IMMEDIATE`` (take the
    write lock up front, so no deadlock on upgrade); readers use plain ``BEGIN``
    and, in WAL mode, never wait for the writer.
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url, "BEGIN IMMEDIATE" if write else "BEGIN")
    # No pre-ping: a dead connection fails its batch, SQLAlchemy invalidates it, and the
    # writer retries order by order on fresh connections.
    return create_engine(url, pool_size=pool_size, max_overflow=4)


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(begin)

    return engine


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (Alembic)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
