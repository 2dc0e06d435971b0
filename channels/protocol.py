"""An acquirer connection: framing, decoding, many requests in flight, idle timeout.

The protocol knows bytes and connections only. Each decoded request goes to
a handler (the switch's pipeline) that answers with response fields, or with
fields and the bytes they encode to (``Encoded``), which are sent as they are;
answers go back as they complete, in any order. Responses are matched by the peer
(DE 11 + DE 41, or DE 11 + DE 7 + DE 32), not by order.
"""

from __future__ import annotations

import itertools
from collections import deque
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
from iso.framing import PREFIXES, Frame, FrameDecoder, encode_frame, swap_tpdu
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
    """One connection: reads frames, dispatches requests, writes answers.

    Back-pressure works on both sides. Reading pauses while ``max_in_flight``
    requests are counted on the connection, and while the transport holds more
    than its buffer limit (64 KiB) of unsent answers: the connection is the
    transport's push producer, so the transport tells it when its buffer fills
    and empties. A request counts until its answer is handed to the transport,
    and, if it was handed over while the buffer was full, until the buffer has
    drained; so a peer that sends and never reads holds at most the buffer and
    ``max_in_flight`` answers. Frames decoded past the limit wait, undispatched,
    until there is room. Once a close is decided (a broken stream, an
    unanswerable frame, a stop), nothing more is dispatched.
    """

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
        self._waiting: deque[Frame] = deque()  # decoded, not dispatched yet
        self._processing = 0  # dispatched, answer not handed to the transport yet
        self._held = 0  # answered while the transport's buffer was full
        self._write_blocked = False  # the transport's buffer is over its limit
        self._paused = False  # we paused the transport's reading
        self._dispatching = False
        self._closing = False  # a close is decided: take no more requests
        self._stopping = False  # the switch is stopping: answer what is in flight, then close
        self._gone = False
        self._drained: list[Deferred[None]] = []  # drain() callers, told when closed
        self.id = next(_ids)

    @property
    def in_flight(self) -> int:
        """Requests whose answers have not left the switch's buffers (see the class doc)."""
        return self._processing + self._held

    @property
    def waiting(self) -> int:
        """Frames decoded but not dispatched (over ``max_in_flight`` or a full buffer)."""
        return len(self._waiting)

    @property
    def reading(self) -> bool:
        """Whether the connection reads from its socket (False while back-pressure holds)."""
        return not self._paused

    def connectionMade(self) -> None:
        log.info("connection opened", **self._who())
        self.transport.setTcpKeepAlive(True)  # type: ignore[attr-defined]
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.setTimeout(self.settings.idle_timeout)

    def connectionLost(self, reason: Any = None) -> None:
        why = reason.getErrorMessage() if reason is not None else "closed"
        log.info("connection closed", reason=why, in_flight=self.in_flight, **self._who())
        self.setTimeout(None)
        self._closing = True
        self._waiting.clear()
        self._gone = True
        self._on_close(self)
        for d in self._drained:
            d.callback(None)
        self._drained.clear()

    def _who(self) -> dict[str, Any]:
        return {"channel": self.settings.name, "conn": self.id, "peer": self._origin.peer}

    def timeoutConnection(self) -> None:
        if self.in_flight:
            # Silent because it waits for our answers: that is not idle.
            self.resetTimeout()
            return
        log.info("idle connection closed", channel=self.settings.name, conn=self.id)
        self._closing = True
        self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- the switch stopping -------------------------------------------------

    def drain(self) -> Deferred[None]:
        """Take no new request, answer every one in flight, then close; fires when closed.

        Bytes that arrive meanwhile are read and dropped, never dispatched: the
        switch answers nothing it has not started. Reading goes on so that the
        close is an orderly FIN; closing a socket with unread bytes resets it,
        which can drop answers still in the kernel's buffers.
        """
        d: Deferred[None] = Deferred()
        if self._gone:
            d.callback(None)
            return d
        self._drained.append(d)
        self._stopping = True
        self._waiting.clear()
        self._set_paused(False)
        self._close_if_drained()
        return d

    def abort(self) -> None:
        """Close at once, whatever is in flight (a stop that ran out of time)."""
        self._closing = True
        self._waiting.clear()
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def _close_if_drained(self) -> None:
        if self._stopping and not self._processing and not self._closing:
            self._close()

    def _close(self) -> None:
        """Close after the buffered answers are written (the producer would keep it open)."""
        self._closing = True
        self._waiting.clear()
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        self.transport.loseConnection()

    # -- reading -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._stopping:
            return  # a close is decided: nothing more is taken
        self.resetTimeout()
        try:
            self._waiting.extend(self._decoder.feed(data))
        except IsoFormatError as exc:
            self._bad_stream(exc)
            return
        self._dispatch()

    def _dispatch(self) -> None:
        """Dispatch waiting frames while there is room (never re-entered by sync answers)."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._waiting and self._has_room():
                frame = self._waiting.popleft()
                self._request(frame.payload, frame.tpdu)
        finally:
            self._dispatching = False
        self._throttle()

    def _has_room(self) -> bool:
        return (
            not self._closing
            and not self._stopping
            and not self._write_blocked
            and self.in_flight < self.settings.max_in_flight
        )

    def _bad_stream(self, exc: IsoFormatError) -> None:
        """A length we cannot trust: the stream is lost, so the connection goes."""
        kind = "oversize" if isinstance(exc, FrameTooLarge) else "garbage"
        log.warning(
            "closing connection: bad frame", channel=self.settings.name, conn=self.id, problem=kind
        )
        self._count_bad()
        self._close()

    def _request(self, payload: bytes, tpdu: bytes | None) -> None:
        try:
            request = decode_message(payload)
        except IsoFormatError as exc:
            self._count_bad()
            response = self._handler.malformed(decode_partial(payload), exc.field, self._origin)
            if response is None:
                log.warning(
                    "closing connection: a frame without a readable MTI cannot be answered",
                    **self._who(),
                )
                self._close()
            else:
                self._send(response, tpdu)
            return
        self._processing += 1
        d = self._handler.handle(request, self._origin, payload)
        d.addCallback(self._send, tpdu)
        d.addErrback(self._failed)
        d.addBoth(self._done)

    # -- writing -------------------------------------------------------------

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
        self._processing -= 1
        if self._write_blocked:
            self._held += 1  # still in the transport's full buffer: it counts until drained
        self._dispatch()
        self._close_if_drained()

    # -- IPushProducer: the transport's write buffer ---------------------------

    def pauseProducing(self) -> None:
        """The transport's buffer is over its limit: take no more requests until it drains."""
        self._write_blocked = True
        self._throttle()

    def resumeProducing(self) -> None:
        """The transport's buffer is empty: the answers held in it have been written out."""
        self._write_blocked = False
        self._held = 0
        self._dispatch()

    def stopProducing(self) -> None:
        self._closing = True
        self._waiting.clear()

    def _throttle(self) -> None:
        """Read only while there is room for more requests (or to drop bytes on a stop)."""
        if self._stopping or self._closing:
            return
        self._set_paused(not self._has_room())

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused or not self.transport.connected:  # type: ignore[attr-defined]
            return
        self._paused = paused
        if paused:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        else:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _count_bad(self) -> None:
        metrics.BAD_FRAMES.labels(self.settings.name).inc()
