"""Fixtures of the HSM tests: the private reactor, the simulator on it, and both HSMs.

``hsm`` is the one shared behavioural suite's subject: the in-process
``SoftwareHsm``, and ``PayShieldClient`` talking to the simulator over real
TCP on an ephemeral port. The same assertions must hold for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hsm_sim.client import PayShieldClient
from hsm_sim.server import HsmServerFactory, listen
from hsm_sim.software import HsmCore, SoftwareHsm
from tests.hsm.hsm_support import WAIT, Blocking, ReactorThread


@dataclass
class Simulator:
    factory: HsmServerFactory
    listening: Any

    @property
    def port(self) -> int:
        return int(self.listening.getHost().port)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def reactor_thread() -> Iterator[ReactorThread]:
    thread = ReactorThread()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
def simulator(reactor_thread: ReactorThread) -> Iterator[Simulator]:
    """The simulator on 127.0.0.1, an ephemeral port, header length 4, the test LMK."""
    factory = HsmServerFactory(HsmCore())
    listening = reactor_thread.call(listen, reactor_thread.reactor, factory, "127.0.0.1", 0)
    yield Simulator(factory, listening)
    reactor_thread.call(listening.stopListening)
    reactor_thread.call(factory.drop_connections)


@pytest.fixture
def client(reactor_thread: ReactorThread, simulator: Simulator) -> Iterator[PayShieldClient]:
    made = PayShieldClient(simulator.url, reactor_thread.reactor, timeout=WAIT)
    yield made
    reactor_thread.call(made.close)


@pytest.fixture(params=["software", "client"])
def hsm(
    request: pytest.FixtureRequest, reactor_thread: ReactorThread, simulator: Simulator
) -> Iterator[Blocking]:
    """Each implementation of the interface, its calls waited for."""
    if request.param == "software":
        yield Blocking(SoftwareHsm(), reactor_thread)
        return
    made = PayShieldClient(simulator.url, reactor_thread.reactor, timeout=WAIT)
    yield Blocking(made, reactor_thread)
    reactor_thread.call(made.close)
