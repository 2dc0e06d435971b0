"""Fixtures of the outbox tests: a migrated database of each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from switch.ledger.database import make_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The schema on an empty database; the engine the switch's read pool would use."""
    writer = make_engine(db_url)
    migrate(writer)
    writer.dispose()
    engine = make_engine(db_url, write=False)
    yield engine
    engine.dispose()
