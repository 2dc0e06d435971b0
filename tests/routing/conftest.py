"""The reference biller server as a real process, shared by the biller-sim tests.

``sim`` is the session's server with every biller's faults cleared after each
test; tests use payment ids of their own, so they never see each other's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.biller_process import BillerSimProcess
from routing.biller_sim.catalogue import BILLERS


@pytest.fixture(scope="session")
def biller_sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BillerSimProcess]:
    with BillerSimProcess(tmp_path_factory.mktemp("biller-sim")) as server:
        yield server


@pytest.fixture
def sim(biller_sim_process: BillerSimProcess) -> Iterator[BillerSimProcess]:
    yield biller_sim_process
    for code in BILLERS:
        biller_sim_process.control(code, {})
