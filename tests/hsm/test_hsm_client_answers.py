"""``PayShieldClient`` never takes one call's answer for another's (issue 9, item 8).

A payShield-protocol server of the test's own, over real TCP, misbehaves on
cue: it holds back the answer to a marked request and sends it, late, just
before the answer to a later marked request; or it answers a marked request
with another command's response code. Headers are one character long, so
they come round again after ten calls, as four-character ones do after
10,000 calls during an HSM stall.

Only the call that must time out waits for the client's time limit; every
other wait is for an event, bounded by the suite's generous ``WAIT``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet import protocol
from twisted.protocols.basic import Int16StringReceiver

from hsm_sim.client import PayShieldClient
from hsm_sim.commands import dispatch
from hsm_sim.interface import TAK, HsmBadResponse, HsmTimeout, MacAlgorithm, Padding
from hsm_sim.software import HsmCore, SoftwareHsm
from tests.hsm.hsm_support import WAIT, ReactorThread, under_lmk

TAK_KEY = under_lmk(TAK, "7CA110454A1A6E570131D9619DC1376E")
ALG3, METHOD2 = MacAlgorithm.ISO9797_ALG3, Padding.METHOD2
HEADER_LENGTH = 1  # ten headers: the counter comes round after ten calls
TIMEOUT = 3.0  # the client's time limit: generous for every call that is answered

STALL = b"STALL"  # a request whose answer the server holds back
RELEASE = b"RELEASE"  # a request before whose answer the held ones go out
WRONG = b"WRONG"  # a request answered with another command's response code


class Misbehaving(Int16StringReceiver):
    """One connection of ``MisbehavingServer``: answers by the marks in the request."""

    def __init__(self, server: MisbehavingServer) -> None:
        self._server = server

    def connectionLost(self, reason: Any = None) -> None:
        self._server.closed.set()

    def stringReceived(self, frame: bytes) -> None:
        header, command = frame[:HEADER_LENGTH], frame[HEADER_LENGTH:]
        answer = dispatch(self._server.core, header, command)
        if STALL in command:
            self._server.held.append((self, answer))
            return
        if RELEASE in command:
            held, self._server.held = self._server.held, []
            for connection, late in held:
                if connection.transport.connected:  # type: ignore[union-attr]
                    connection.sendString(late)
        if WRONG in command:
            answer = header + self._server.wrong_answer
        self.sendString(answer)


class MisbehavingServer(protocol.ServerFactory):
    """The simulator's answers, given late or under the wrong code when a request asks."""

    def __init__(self, wrong_answer: bytes = b"") -> None:
        self.core = HsmCore()
        self.held: list[tuple[Misbehaving, bytes]] = []
        self.wrong_answer = wrong_answer
        self.closed = threading.Event()  # a connection to the server was closed

    def buildProtocol(self, addr: Any) -> Misbehaving:
        return Misbehaving(self)


@pytest.fixture
def start(reactor_thread: ReactorThread) -> Iterator[Callable[[MisbehavingServer], str]]:
    """Listen with a server on the test reactor; its URL."""
    ports: list[Any] = []

    def listen(server: MisbehavingServer) -> str:
        port = reactor_thread.call(reactor_thread.reactor.listenTCP, 0, server, 50, "127.0.0.1")
        ports.append(port)
        return f"tcp://127.0.0.1:{port.getHost().port}"

    yield listen
    for port in ports:
        reactor_thread.call(port.stopListening)


def software_mac(thread: ReactorThread, message: bytes) -> str:
    return str(thread.call(SoftwareHsm().generate_mac, TAK_KEY, message, ALG3, METHOD2))


@pytest.mark.parametrize("connected", [False, True], ids=["first-call", "open-connection"])
def test_hsm_client_late_answer_never_satisfies_a_later_call(
    reactor_thread: ReactorThread, start: Callable[[MisbehavingServer], str], connected: bool
) -> None:
    """The reproduction: a genuine MAC's late "verified" must not verify a forged one.

    The stalled call is the client's first (it waits for a connection, then
    times out) or one made on an open connection (the shared deadline timer).
    Ten calls later the header counter is back at the stalled call's header.
    """
    url = start(MisbehavingServer())
    client = PayShieldClient(
        url, reactor_thread.reactor, header_length=HEADER_LENGTH, pool_size=1, timeout=TIMEOUT
    )
    if connected:
        reactor_thread.call(client.generate_mac, TAK_KEY, b"warm up", ALG3, METHOD2)
    genuine = STALL + b" pay 100 to biller 7"
    mac = software_mac(reactor_thread, genuine)
    with pytest.raises(HsmTimeout):  # its answer (verified) is held back
        reactor_thread.call(client.verify_mac, TAK_KEY, genuine, mac, ALG3, METHOD2)
    for n in range(10**HEADER_LENGTH - 1):  # every other header once
        message = b"filler %d" % n
        mac = reactor_thread.call(client.generate_mac, TAK_KEY, message, ALG3, METHOD2)
        assert mac == software_mac(reactor_thread, message)

    forged = RELEASE + b" pay 1000000 to biller 666"
    assert software_mac(reactor_thread, forged) != "00000000"
    verified = reactor_thread.call(client.verify_mac, TAK_KEY, forged, "00000000", ALG3, METHOD2)
    assert verified is False
    reactor_thread.call(client.close)


@pytest.mark.parametrize(
    "wrong_answer",
    [b"DD00", b"DD01", b"M801", b"M701"],
    ids=["another-command-ok", "another-command-failed", "request-code", "neighbour-code"],
)
def test_hsm_client_answer_with_the_wrong_response_code_fails_the_call(
    reactor_thread: ReactorThread,
    start: Callable[[MisbehavingServer], str],
    wrong_answer: bytes,
) -> None:
    """M8 must be answered M9: anything else fails the call and drops the connection."""
    server = MisbehavingServer(wrong_answer)
    client = PayShieldClient(
        start(server), reactor_thread.reactor, header_length=HEADER_LENGTH, pool_size=1
    )
    message = WRONG + b" pay 5"
    with pytest.raises(HsmBadResponse):
        reactor_thread.call(client.verify_mac, TAK_KEY, message, "00000000", ALG3, METHOD2)
    assert server.closed.wait(WAIT), "the connection that carried it stays open"
    # The client goes on, on a fresh connection.
    mac = reactor_thread.call(client.generate_mac, TAK_KEY, b"next", ALG3, METHOD2)
    assert mac == software_mac(reactor_thread, b"next")
    reactor_thread.call(client.close)
