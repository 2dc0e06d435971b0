"""A listening channel: one port, its connections, and a clean stop."""

from __future__ import annotations

from typing import Any

import structlog
from twisted.internet import protocol
from twisted.internet.defer import Deferred, succeed

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

    def start(self) -> int:
        """Listen; returns the port actually bound (useful with port 0 in tests)."""
        s = self.settings
        self._port = self._reactor.listenTCP(s.port, self.factory, backlog=1024, interface=s.host)
        bound = self._port.getHost().port
        log.info("channel listening", channel=s.name, kind=s.kind, host=s.host, port=bound)
        return bound

    def stop_listening(self) -> Deferred:
        return self._port.stopListening() if self._port else succeed(None)

    def close_connections(self) -> None:
        """Close every connection after its pending writes are flushed."""
        for conn in list(self.factory.connections):
            conn.transport.loseConnection()
