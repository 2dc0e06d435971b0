"""Fixtures of the ledger tests: a seeded database of each backend, and writer nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from switch.ledger.database import make_engine
from tests.ledger.ledger_support import Node, open_ledger


@pytest.fixture
def ledger(db_url: str) -> Iterator[Engine]:
    """A migrated database (SQLite file or PostgreSQL schema) with demo data and test billers."""
    engine = open_ledger(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def node(ledger: Engine, db_url: str) -> Iterator[Callable[..., Node]]:
    """Make writer nodes, each on an engine of its own; stops and disposes them all at the end."""
    made: list[Node] = []

    def make(engine: Engine | None = None, **kwargs: Any) -> Node:
        n = Node(engine if engine is not None else make_engine(db_url), **kwargs)
        made.append(n)
        return n

    yield make
    for n in made:
        if n.started and not n.stopped:
            n.stop()
        n.engine.dispose()
