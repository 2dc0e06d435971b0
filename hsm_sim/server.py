"""The simulator's TCP side: 2-byte length frames, an echoed header, one answer per command.

Commands are answered at once, in the order they arrive (the work is
microseconds), or each after ``delay`` seconds (a slow HSM, for tests), so
any number may be in flight on a connection; the header lets the client
match answers. A frame whose length exceeds ``max_frame``
means the stream cannot be trusted, so that connection (only that one) is
closed; anything else a peer sends gets an error response from ``dispatch``.
"""

from __future__ import annotations

from typing import Any

import structlog
from twisted.internet import protocol
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.basic import Int16StringReceiver

from hsm_sim.commands import dispatch
from hsm_sim.software import HsmCore

log = structlog.get_logger(__name__)

DEFAULT_HEADER_LENGTH = 4
DEFAULT_MAX_FRAME = 32768  # payShield's own limit on a host command


class HostCommandConnection(Int16StringReceiver):
    """One host connection to the simulator."""

    def __init__(self, factory: HsmServerFactory) -> None:
        self._factory = factory
        self.MAX_LENGTH = factory.max_frame

    def connectionMade(self) -> None:
        self._factory.connections.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        self._factory.connections.discard(self)

    def stringReceived(self, frame: bytes) -> None:
        header_length = self._factory.header_length
        if len(frame) < header_length:
            # No header to echo means no answer the client could match: drop it.
            log.warning("frame shorter than the header ignored", length=len(frame))
            return
        command = frame[header_length:]
        answer = dispatch(self._factory.core, frame[:header_length], command)
        # Diagnostics (NC) are answered at once: the switch asks them at start, before the
        # slow traffic a delay is there to play.
        if self._factory.delay and not command.startswith(b"NC"):
            log.info("answer delayed", seconds=self._factory.delay)
            self._factory.later(self.sendString, answer)
        else:
            self.sendString(answer)

    def lengthLimitExceeded(self, length: int) -> None:
        log.warning("closing connection: frame too long", length=length)
        self.transport.loseConnection()  # type: ignore[union-attr]


class HsmServerFactory(protocol.ServerFactory):
    """The simulator: one HSM core shared by every connection."""

    def __init__(
        self,
        core: HsmCore,
        header_length: int = DEFAULT_HEADER_LENGTH,
        max_frame: int = DEFAULT_MAX_FRAME,
        delay: float = 0.0,
        clock: Any = None,
    ) -> None:
        self.core = core
        self.header_length = header_length
        self.max_frame = max_frame
        self.delay = delay  # seconds before each answer (a slow HSM, for tests of timeouts)
        self.clock = clock  # None: the global reactor, looked up only when there is a delay
        self.connections: set[HostCommandConnection] = set()

    def later(self, function: Any, *args: Any) -> None:
        """Call ``function`` after ``delay`` seconds."""
        clock = self.clock
        if clock is None:
            from twisted.internet import reactor as clock
        clock.callLater(self.delay, function, *args)

    def buildProtocol(self, addr: Any) -> HostCommandConnection:
        return HostCommandConnection(self)

    def drop_connections(self) -> None:
        """Close every host connection at once (shutdown; tests of client reconnection)."""
        for connection in list(self.connections):
            connection.transport.loseConnection()  # type: ignore[union-attr]


def listen(
    reactor: Any,
    factory: HsmServerFactory,
    host: str = "127.0.0.1",
    port: int = 1500,
) -> IListeningPort:
    """Start listening; port 0 picks a free one (``.getHost().port`` tells which)."""
    return reactor.listenTCP(port, factory, interface=host)  # type: ignore[no-any-return]
