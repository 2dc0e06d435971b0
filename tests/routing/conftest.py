"""Fixtures of the routing tests: a private reactor in a thread and the broken biller on it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.hsm.hsm_support import ReactorThread
from tests.routing.broken_biller import BrokenBiller


@pytest.fixture(scope="module")
def reactor_thread() -> Iterator[ReactorThread]:
    thread = ReactorThread()
    thread.start()
    yield thread
    thread.stop()


@dataclass
class Served:
    biller: BrokenBiller
    port: int


@pytest.fixture
def broken(reactor_thread: ReactorThread) -> Iterator[Served]:
    """A fresh broken biller on 127.0.0.1, an ephemeral port, every biller ``ok``."""
    biller = BrokenBiller()
    listening: Any = reactor_thread.call(biller.listen, reactor_thread.reactor)
    yield Served(biller, listening.getHost().port)
    reactor_thread.call(biller.release)
    reactor_thread.call(listening.stopListening)
