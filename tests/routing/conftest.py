"""Fixtures of the routing tests: the reference biller server as a real process, and a
private reactor in a thread with the deliberately broken biller on it.

``sim`` is the session's server with every biller's faults cleared after each
test; tests use payment ids of their own, so they never see each other's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from loadtest.biller_process import BillerSimProcess
from routing.biller_sim.catalogue import BILLERS
from tests.hsm.hsm_support import ReactorThread
from tests.routing.broken_biller import BrokenBiller


@pytest.fixture(scope="session")
def biller_sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BillerSimProcess]:
    with BillerSimProcess(tmp_path_factory.mktemp("biller-sim")) as server:
        yield server


@pytest.fixture
def sim(biller_sim_process: BillerSimProcess) -> Iterator[BillerSimProcess]:
    yield biller_sim_process
    for code in BILLERS:
        biller_sim_process.control(code, {})


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
