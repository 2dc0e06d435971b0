"""``PayShieldClient`` against servers that misbehave: silent, hanging up, out of order.

Time limits here are behaviour (a call must end). The clients run on a
``ClockedReactor``: their time limit passes only when a test advances the
clock, so no successful call is ever bounded by it and a time-out happens
exactly where the test says; what a server does late, it does when the test
releases it. No test sleeps or measures how long anything took.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet import protocol
from twisted.internet.defer import DeferredList, gatherResults
from twisted.protocols.basic import Int16StringReceiver

from hsm_sim.client import PayShieldClient, parse_url
from hsm_sim.commands import dispatch
from hsm_sim.interface import (
    TAK,
    HsmBadResponse,
    HsmTimeout,
    HsmUnavailable,
    MacAlgorithm,
    Padding,
)
from hsm_sim.software import HsmCore, SoftwareHsm
from tests.hsm.conftest import Simulator
from tests.hsm.hsm_support import (
    WAIT,
    ClockedReactor,
    ReactorThread,
    expire,
    started,
    under_lmk,
    waited,
)

TAK_KEY = under_lmk(TAK, "7CA110454A1A6E570131D9619DC1376E")
ALG3, METHOD2 = MacAlgorithm.ISO9797_ALG3, Padding.METHOD2


class Silent(protocol.Protocol):
    """Reads everything, answers nothing."""


class HangUp(protocol.Protocol):
    """Closes the connection as soon as a request arrives."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class Reversing(Int16StringReceiver):
    """Holds requests until it has ``batch`` of them, then answers them last first."""

    batch = 5

    def __init__(self) -> None:
        self._held: list[bytes] = []

    def stringReceived(self, frame: bytes) -> None:
        self._held.append(frame)
        if len(self._held) == self.batch:
            for held in reversed(self._held):
                self.sendString(dispatch(HsmCore(), held[:4], held[4:]))
            self._held = []


class AnswersFirst(Int16StringReceiver):
    """Answers the first request of a connection, then nothing: the connection stays open."""

    def __init__(self) -> None:
        self._answered = False

    def stringReceived(self, frame: bytes) -> None:
        if not self._answered:
            self._answered = True
            self.sendString(dispatch(HsmCore(), frame[:4], frame[4:]))


class Garbled(Int16StringReceiver):
    """Echoes the header, then an answer that is too short to be one."""

    def stringReceived(self, frame: bytes) -> None:
        self.sendString(frame[:4] + b"ND00ABC")


@pytest.fixture
def serve(reactor_thread: ReactorThread) -> Iterator[Callable[[type[Any]], str]]:
    """Start a server of a given protocol on the test reactor; its URL."""
    ports: list[Any] = []

    def start(protocol_class: type[Any]) -> str:
        factory = protocol.Factory.forProtocol(protocol_class)
        factory.reactor = reactor_thread.reactor  # type: ignore[attr-defined]
        port = reactor_thread.call(reactor_thread.reactor.listenTCP, 0, factory, 50, "127.0.0.1")
        ports.append(port)
        return f"tcp://127.0.0.1:{port.getHost().port}"

    yield start
    for port in ports:
        reactor_thread.call(port.stopListening)


# The clients' time limit: on the test clock, so it passes only when a test says
# (it also bounds connecting, on the real clock, where it is generous).
TIMEOUT = WAIT


def make_client(
    thread: ReactorThread, url: str, **kwargs: Any
) -> tuple[PayShieldClient, ClockedReactor]:
    reactor = ClockedReactor(thread.reactor)
    return PayShieldClient(url, reactor, timeout=TIMEOUT, **kwargs), reactor


def test_hsm_client_times_out_on_a_silent_hsm(
    reactor_thread: ReactorThread, serve: Callable[[type[Any]], str]
) -> None:
    client, reactor = make_client(reactor_thread, serve(Silent))
    call = started(reactor_thread, client.diagnostics)
    expire(reactor_thread, reactor, TIMEOUT)
    with pytest.raises(HsmTimeout):
        waited(reactor_thread, call)
    reactor_thread.call(client.close)


def test_hsm_client_times_out_calls_on_an_open_connection(
    reactor_thread: ReactorThread, serve: Callable[[type[Any]], str]
) -> None:
    """Once connected, calls share one timer; each still fails alone with HsmTimeout."""
    client, reactor = make_client(reactor_thread, serve(AnswersFirst), pool_size=1)
    reactor_thread.call(client.diagnostics)  # answered: no time limit bounds it
    assert reactor.getDelayedCalls() == []  # its time limit went with its answer

    def several() -> Any:
        calls = [client.generate_mac(TAK_KEY, b"m%d" % n, ALG3, METHOD2) for n in range(20)]
        assert len(reactor.getDelayedCalls()) == 1  # one timer for all of them
        return DeferredList(calls, consumeErrors=True)

    calls = started(reactor_thread, several)
    expire(reactor_thread, reactor, TIMEOUT)
    results = waited(reactor_thread, calls)
    assert [ok for ok, _ in results] == [False] * 20
    assert all(failure.check(HsmTimeout) for _, failure in results)
    assert reactor_thread.call(lambda: client.connections) == ()  # dropped: answers may come
    for _ in range(2):  # the timer is armed again for calls made after it ran
        reactor_thread.call(client.diagnostics)  # a new connection's first call is answered
        call = started(reactor_thread, client.diagnostics)
        assert len(reactor.getDelayedCalls()) == 1
        expire(reactor_thread, reactor, TIMEOUT)
        with pytest.raises(HsmTimeout):
            waited(reactor_thread, call)
    reactor_thread.call(client.close)


def test_hsm_client_drops_a_late_answer_and_goes_on(
    reactor_thread: ReactorThread, serve: Callable[[type[Any]], str]
) -> None:
    held: list[Callable[[], None]] = []
    holding = threading.Event()

    class HoldsSecond(Int16StringReceiver):
        """Answers the second request of a connection only when the test releases it."""

        def __init__(self) -> None:
            self._seen = 0

        def stringReceived(self, frame: bytes) -> None:
            self._seen += 1
            answer = dispatch(HsmCore(), frame[:4], frame[4:])
            if self._seen == 2:
                held.append(functools.partial(self.sendString, answer))
                holding.set()
            else:
                self.sendString(answer)

    client, reactor = make_client(reactor_thread, serve(HoldsSecond), pool_size=1)
    software = SoftwareHsm()

    def mac(message: bytes, hsm: Any = client) -> Any:
        return hsm.generate_mac(TAK_KEY, message, ALG3, METHOD2)

    assert reactor_thread.call(mac, b"first") == reactor_thread.call(mac, b"first", software)
    late = started(reactor_thread, mac, b"second")
    assert holding.wait(WAIT)  # the server has the request and holds its answer
    expire(reactor_thread, reactor, TIMEOUT)
    with pytest.raises(HsmTimeout):
        waited(reactor_thread, late)
    reactor_thread.call(held[0])  # the late answer goes out, ahead of the next one
    # It matches nothing: the next call gets its own answer, not the late one.
    assert reactor_thread.call(mac, b"third") == reactor_thread.call(mac, b"third", software)
    reactor_thread.call(client.close)


def test_hsm_client_without_a_server_is_unavailable(reactor_thread: ReactorThread) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client, _ = make_client(reactor_thread, f"tcp://127.0.0.1:{port}")
    with pytest.raises(HsmUnavailable):
        reactor_thread.call(client.diagnostics)


def test_hsm_client_call_in_flight_when_the_connection_drops_is_unavailable(
    reactor_thread: ReactorThread, serve: Callable[[type[Any]], str]
) -> None:
    client, _ = make_client(reactor_thread, serve(HangUp))
    with pytest.raises(HsmUnavailable):
        reactor_thread.call(client.diagnostics)


def test_hsm_client_reconnects_after_the_server_drops_it(
    reactor_thread: ReactorThread, simulator: Simulator, client: PayShieldClient
) -> None:
    before = reactor_thread.call(client.diagnostics)
    connections = reactor_thread.call(lambda: client.connections)
    reactor_thread.call(simulator.factory.drop_connections)
    reactor_thread.call(lambda: gatherResults([c.lost for c in connections]))
    assert reactor_thread.call(client.diagnostics) == before
    assert not set(connections) & set(reactor_thread.call(lambda: client.connections))


def test_hsm_client_matches_answers_that_come_out_of_order(
    reactor_thread: ReactorThread, serve: Callable[[type[Any]], str]
) -> None:
    client, _ = make_client(reactor_thread, serve(Reversing), pool_size=1)
    messages = [f"message {n}".encode() for n in range(Reversing.batch)]

    def all_at_once() -> Any:
        return gatherResults([client.generate_mac(TAK_KEY, m, ALG3, METHOD2) for m in messages])

    macs = reactor_thread.call(all_at_once)
    software = SoftwareHsm()
    assert macs == [
        reactor_thread.call(software.generate_mac, TAK_KEY, m, ALG3, METHOD2) for m in messages
    ]
    reactor_thread.call(client.close)


def test_hsm_client_many_calls_in_flight_over_the_pool(
    reactor_thread: ReactorThread, client: PayShieldClient
) -> None:
    messages = [bytes([n % 256]) * n for n in range(300)]

    def all_at_once() -> Any:
        return gatherResults([client.generate_mac(TAK_KEY, m, ALG3, METHOD2) for m in messages])

    macs = reactor_thread.call(all_at_once)
    software = SoftwareHsm()
    expected = [
        reactor_thread.call(software.generate_mac, TAK_KEY, m, ALG3, METHOD2) for m in messages
    ]
    assert macs == expected
    assert len(reactor_thread.call(lambda: client.connections)) <= 2  # the pool's size


def test_hsm_client_reports_an_answer_it_cannot_read(
    reactor_thread: ReactorThread, serve: Callable[[type[Any]], str]
) -> None:
    client, _ = make_client(reactor_thread, serve(Garbled))
    with pytest.raises(HsmBadResponse):
        reactor_thread.call(client.diagnostics)
    reactor_thread.call(client.close)


def test_hsm_closed_client_is_unavailable(
    reactor_thread: ReactorThread, client: PayShieldClient
) -> None:
    reactor_thread.call(client.diagnostics)
    reactor_thread.call(client.close)
    with pytest.raises(HsmUnavailable):
        reactor_thread.call(client.diagnostics)


@pytest.mark.parametrize(
    ("url", "address"),
    [("tcp://127.0.0.1:1500", ("127.0.0.1", 1500)), ("tcp://hsm.local", ("hsm.local", 1500))],
)
def test_hsm_client_url(url: str, address: tuple[str, int]) -> None:
    assert parse_url(url) == address


@pytest.mark.parametrize("url", ["http://127.0.0.1:1500", "127.0.0.1:1500", "tcp://:1500"])
def test_hsm_client_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)
