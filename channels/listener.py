"""A listening channel: one port, its connections, and a clean stop."""

from __future__ import annotations

import socket
from typing import Any

import structlog
from twisted.internet import protocol
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import CannotListenError

from channels import metrics
from channels.protocol import Handler, IsoConnection
from switch.config import ChannelSettings
from switch.transaction import Origin

log = structlog.get_logger(__name__)


class ChannelFactory(protocol.ServerFactory):
    def __init__(self, settings: ChannelSettings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self.connections: set[IsoConnection] = set()

    def buildProtocol(self, addr: Any) -> IsoConnection:
        s = self.settings
        origin = Origin(s.name, s.kind, f"{addr.host}:{addr.port}", s.mac)
        conn = IsoConnection(self.settings, self.handler, origin, self._closed)
        self.connections.add(conn)
        metrics.CONNECTIONS.labels(self.settings.name).inc()
        return conn

    def _closed(self, conn: IsoConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            metrics.CONNECTIONS.labels(self.settings.name).dec()


class Channel:
    """Listens on the channel's port until stopped."""

    def __init__(self, reactor: Any, settings: ChannelSettings, handler: Handler) -> None:
        self.settings = settings
        self.factory = ChannelFactory(settings, handler)
        self._reactor = reactor
        self._port: Any = None

    def start(self, shared: bool = False) -> int:
        """Listen; returns the port actually bound (useful with port 0 in tests).

        ``shared``: bind with SO_REUSEPORT, beside the other worker processes
        listening on the same port (switch/workers.py).
        """
        s = self.settings
        if shared:
            with reuseport_socket(s.host, s.port, listen=True) as sock:
                self._port = self._reactor.adoptStreamPort(sock.fileno(), sock.family, self.factory)
        else:
            self._port = self._reactor.listenTCP(
                s.port, self.factory, backlog=1024, interface=s.host
            )
        bound = self._port.getHost().port
        log.info("channel listening", channel=s.name, kind=s.kind, host=s.host, port=bound)
        return bound

    def stop_listening(self) -> Deferred:
        return self._port.stopListening() if self._port else succeed(None)

    def drain(self, timeout: float) -> Deferred:
        """Stop: every connection answers what it has in flight, then closes.

        Fires when all are closed; connections still open after ``timeout``
        seconds (an HSM or database that does not answer, a peer that does not
        read) are aborted then. Call after ``stop_listening``.
        """
        connections = list(self.factory.connections)
        done = DeferredList([conn.drain() for conn in connections])
        late = self._reactor.callLater(timeout, self._abort, connections)
        done.addBoth(lambda result: late.active() and late.cancel())
        return done

    def _abort(self, connections: list[IsoConnection]) -> None:
        left = [conn for conn in connections if conn in self.factory.connections]
        log.error(
            "stop timed out: connections closed with requests in flight",
            channel=self.settings.name,
            connections=len(left),
            requests=sum(conn.in_flight for conn in left),
        )
        for conn in left:
            conn.abort()


def reuseport_socket(host: str, port: int, listen: bool) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT: listening, or only holding the port.

    Several sockets bound this way to one port share its connections (the
    kernel spreads them by address); a bound socket that does not listen
    takes none, but keeps the port from anyone else.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(1024)
            sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise CannotListenError(host, port, exc) from exc
    return sock
