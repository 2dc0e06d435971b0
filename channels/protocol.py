"""An acquirer connection: framing, decoding, many requests in flight, idle timeout.

The protocol knows bytes and connections only. Each decoded request goes to
a handler (the switch's pipeline) that answers with response fields, or with
fields and the bytes they encode to (``Encoded``), which are sent as they are;
answers go back as they complete, in any order. Responses are matched by the peer
(DE 11 + DE 41, or DE 11 + DE 7 + DE 32), not by order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

import structlog
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.protocols.policies import TimeoutMixin

from channels import metrics
from iso.dialect import Encoded, decode_message, encode_message
from iso.errors import FrameTooLarge, IsoFormatError
from iso.framing import PREFIXES, FrameDecoder, encode_frame, swap_tpdu
from iso.partial import decode_partial
from switch.config import ChannelSettings
from switch.transaction import Origin

log = structlog.get_logger(__name__)
_ids = itertools.count(1)


class Handler(TypingProtocol):
    """What a channel needs from the switch."""

    def handle(
        self, request: dict[str, str], origin: Origin, raw: bytes
    ) -> Deferred[dict[str, str] | Encoded | None]: ...

    def malformed(
        self, partial: dict[str, str], field: str | None, origin: Origin
    ) -> dict[str, str] | None: ...


class IsoConnection(protocol.Protocol, TimeoutMixin):
    def __init__(
        self,
        settings: ChannelSettings,
        handler: Handler,
        origin: Origin,
        on_close: Callable[[IsoConnection], None],
    ) -> None:
        self.settings = settings
        self._handler = handler
        self._origin = origin
        self._on_close = on_close
        self._prefix = PREFIXES[settings.framing]
        self._decoder = FrameDecoder(self._prefix, settings.max_frame, settings.tpdu)
        self._in_flight = 0
        self._paused = False
        self.id = next(_ids)

    def connectionMade(self) -> None:
        self.transport.setTcpKeepAlive(True)  # type: ignore[attr-defined]
        self.setTimeout(self.settings.idle_timeout)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        self._on_close(self)

    def timeoutConnection(self) -> None:
        if self._in_flight:
            # Silent because it waits for our answers: that is not idle.
            self.resetTimeout()
            return
        log.info("idle connection closed", channel=self.settings.name, conn=self.id)
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        try:
            frames = self._decoder.feed(data)
        except IsoFormatError as exc:
            self._bad_stream(exc)
            return
        for frame in frames:
            self._request(frame.payload, frame.tpdu)

    def _bad_stream(self, exc: IsoFormatError) -> None:
        """A length we cannot trust: the stream is lost, so the connection goes."""
        kind = "oversize" if isinstance(exc, FrameTooLarge) else "garbage"
        log.warning(
            "closing connection: bad frame", channel=self.settings.name, conn=self.id, problem=kind
        )
        self._count_bad()
        self.transport.loseConnection()

    def _request(self, payload: bytes, tpdu: bytes | None) -> None:
        try:
            request = decode_message(payload)
        except IsoFormatError as exc:
            self._count_bad()
            response = self._handler.malformed(decode_partial(payload), exc.field, self._origin)
            if response is None:
                self.transport.loseConnection()
            else:
                self._send(response, tpdu)
            return
        self._in_flight += 1
        self._throttle()
        d = self._handler.handle(request, self._origin, payload)
        d.addCallback(self._send, tpdu)
        d.addErrback(self._failed)
        d.addBoth(self._done)

    def _send(self, response: dict[str, str] | Encoded | None, tpdu: bytes | None) -> None:
        if response is None or not self.transport.connected:  # type: ignore[attr-defined]
            return
        if isinstance(response, Encoded):  # already encoded (a MACed answer): sent as is
            response, raw = response.fields, response.raw
        else:
            raw = b""
        try:
            raw = raw or encode_message(response)
            frame = encode_frame(self._prefix, raw, tpdu and swap_tpdu(tpdu))
        except IsoFormatError as exc:
            # Never let one unencodable response escape into the reactor: the peer would
            # lose the connection with every other response in flight on it.
            log.error(
                "response not encodable",
                channel=self.settings.name,
                conn=self.id,
                mti=response.get("t"),
                stan=response.get("11"),
                problem=str(exc),
            )
            return
        self.transport.write(frame)
        self.resetTimeout()  # idle time counts from the last traffic, either way

    def _failed(self, failure: Any) -> None:
        log.error(
            "response not sent",
            channel=self.settings.name,
            conn=self.id,
            error=failure.getErrorMessage(),
        )

    def _done(self, _: Any) -> None:
        self._in_flight -= 1
        self._throttle()

    def _throttle(self) -> None:
        """Stop reading while too many requests are in flight on this connection."""
        busy = self._in_flight >= self.settings.max_in_flight
        if busy and not self._paused:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
            self._paused = True
        elif not busy and self._paused:
            self.transport.resumeProducing()  # type: ignore[attr-defined]
            self._paused = False

    def _count_bad(self) -> None:
        metrics.BAD_FRAMES.labels(self.settings.name).inc()
