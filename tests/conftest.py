"""Shared fixtures: databases (SQLite and a real PostgreSQL) and a running switch process.

PostgreSQL tests skip with a reason when no server answers, except under
``CI=true``, where a missing PostgreSQL fails them: CI must test the real thing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.switch_process import SwitchProcess

PG_URL = os.environ.get("BILLSWITCH_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_problem() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "no server here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


_PG_PROBLEM: list[str | None] = []


def require_postgres() -> None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_pg_problem())
    problem = _PG_PROBLEM[0]
    if problem is None:
        return
    message = f"PostgreSQL not available at {make_url(PG_URL).render_as_string()}: {problem}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true requires it)")
    pytest.skip(message)


def postgres_schema_url() -> Iterator[str]:
    """A fresh schema in the test database; the URL points its search_path there."""
    require_postgres()
    schema = f"bs_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def backend_url(backend: str, home: Path) -> Iterator[str]:
    """A fresh, empty database of ``backend`` (a generator: PostgreSQL cleans up after)."""
    if backend == "sqlite":
        yield f"sqlite:///{home / 'billswitch.db'}"
    else:
        yield from postgres_schema_url()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SwitchProcess]:  # type: ignore[no-untyped-def]
    """A real switch process (demo data) on ephemeral ports, one per module and backend."""
    home = tmp_path_factory.mktemp("switch")
    for url in backend_url(request.param, home):
        with SwitchProcess.start(home, url) as proc:
            yield proc
