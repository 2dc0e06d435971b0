"""Opening the database: engines for SQLite (WAL) and PostgreSQL, and migrations.

SQLite is the embedded default. It runs in WAL mode with ``synchronous=FULL`` so
that a commit is on disk before a response leaves, and with pysqlite's own
transaction handling switched off so SAVEPOINT and BEGIN IMMEDIATE behave.

Every engine gets bounds on how long the database may keep it waiting
(``Timeouts``): a host that went silent must fail a batch in seconds, not in
the hours TCP alone would take, so that the writer can answer and move on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def sqlite_url(home: Path) -> str:
    """The embedded database's URL under the switch's home folder."""
    return f"sqlite:///{(home / 'billswitch.db').resolve()}"


@dataclass(frozen=True)
class Timeouts:
    """How long the database may keep the switch waiting, in seconds (0: no bound).

    The TCP settings find a dead or silent PostgreSQL host (keepalives while
    waiting for an answer, ``tcp_user_timeout`` while data sent is not
    acknowledged); the session settings bound one statement, one lock wait,
    and a session left in a transaction by a client that went away (its locks
    are released). ``sqlite_busy_timeout`` bounds the wait for SQLite's write lock.
    """

    connect_timeout: float = 3.0
    keepalives_idle: float = 5.0
    keepalives_interval: float = 2.0
    keepalives_count: int = 3
    tcp_user_timeout: float = 10.0
    statement_timeout: float = 5.0
    lock_timeout: float = 5.0
    idle_in_transaction_timeout: float = 30.0
    sqlite_busy_timeout: float = 5.0

    def for_maintenance(self) -> Timeouts:
        """The same, without statement and lock bounds (a migration may take long)."""
        return replace(self, statement_timeout=0, lock_timeout=0)


def make_engine(
    url: str, pool_size: int = 8, write: bool = True, timeouts: Timeouts | None = None
) -> Engine:
    """An engine with the per-dialect settings the ledger relies on.

    On SQLite the writer's transactions start with ``BEGIN IMMEDIATE`` (take the
    write lock up front, so no deadlock on upgrade); readers use plain ``BEGIN``
    and, in WAL mode, never wait for the writer.
    """
    timeouts = timeouts or Timeouts()
    if url.startswith("sqlite"):
        return _sqlite_engine(url, "BEGIN IMMEDIATE" if write else "BEGIN", timeouts)
    # No pre-ping: a dead connection fails its batch, SQLAlchemy invalidates the pool,
    # and the writer tries the batch again on a fresh connection while time is left.
    if make_url(url).get_backend_name() != "postgresql":
        return create_engine(url, pool_size=pool_size, max_overflow=4)
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=4, connect_args=_pg_options(url, timeouts)
    )
    event.listen(engine, "connect", _note_backend)
    return engine


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _pg_options(url: str, t: Timeouts) -> dict[str, Any]:
    """libpq connection parameters; the URL's own values win, its ``options`` are kept."""
    given = make_url(url).query
    session = {
        "statement_timeout": _ms(t.statement_timeout),
        "lock_timeout": _ms(t.lock_timeout),
        "idle_in_transaction_session_timeout": _ms(t.idle_in_transaction_timeout),
    }
    params: dict[str, Any] = {
        "keepalives": 1,
        "keepalives_idle": max(1, round(t.keepalives_idle)),
        "keepalives_interval": max(1, round(t.keepalives_interval)),
        "keepalives_count": t.keepalives_count,
        "tcp_user_timeout": _ms(t.tcp_user_timeout),
    }
    if t.connect_timeout:
        params["connect_timeout"] = max(2, round(t.connect_timeout))  # libpq's minimum
    own = given.get("options", "")
    own = " ".join(own) if isinstance(own, tuple) else own
    extra = " ".join(f"-c {name}={value}" for name, value in session.items() if name not in own)
    params = {k: v for k, v in params.items() if k not in given}
    params["options"] = f"{own} {extra}".strip()
    return params


def _note_backend(dbapi_conn: Any, record: Any) -> None:
    """Remember which server session a connection is (its process id and start), so
    that after a failed COMMIT the writer can wait until that session is over."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        row = cur.fetchone()
    finally:
        cur.close()
    dbapi_conn.rollback()  # a read: nothing to commit
    record.info["backend"] = tuple(row) if row else (dbapi_conn.info.backend_pid, None)


def _sqlite_engine(url: str, begin: str, timeouts: Timeouts) -> Engine:
    busy = timeouts.sqlite_busy_timeout
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={_ms(busy)}")
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
