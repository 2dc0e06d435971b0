"""The generator's side of one TCP connection: frames out, responses matched back.

Responses may come back in any order (spec section 1), so each outstanding
request waits under its match key (DE 41 + 11, or DE 11 + 7 + 32 for a host)
and has its own timer. Every request ends in exactly one ``Reply`` - a
response, a timeout or a lost connection - and never in an errback, so the
traffic code has one path to count and no unhandled-error noise.

With a MAC key every message we send is MACed (X9.19), and a response whose
MAC is missing or wrong ends its request as ``bad_mac``: a terminal must not
trust it, so its outcome is as unknown to us as after a timeout. Requests of
the measured load may instead be sent as prebuilt frames (``send_frame``) and
have their response MACs kept for checking after the window (``ResponseMacs``),
so the generator spends no crypto on them while the switch is measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from iso.dialect import decode_message, encode_message, response_mti
from iso.errors import IsoFormatError
from iso.framing import FrameDecoder, LengthPrefix, encode_frame, swap_tpdu
from loadtest.identity import Identity
from loadtest.response import is_response, read_response
from loadtest.security import ResponseMacs, mac_ok, signed_message
from loadtest.stats import OK, TIMEOUT
from loadtest.workload import MatchKey, match_key

LOST = "lost"
ERROR = "error"
BAD_MAC = "bad_mac"


@dataclass(frozen=True)
class Framing:
    """Length prefix, optional TPDU and optional MAC key (TAK) of the target channel."""

    prefix: LengthPrefix
    tpdu: bytes | None = None
    max_frame: int = 8192
    mac_key: bytes | None = field(default=None, repr=False)

    def encode(self, fields: dict[str, str]) -> bytes:
        """The message as it goes on the wire: MACed when we have a key."""
        if self.mac_key is None:
            return encode_message(fields)
        return signed_message(fields, self.mac_key)

    def frame(self, fields: dict[str, str]) -> bytes:
        """The whole frame: length prefix, TPDU, MACed message (raises IsoFormatError)."""
        return encode_frame(self.prefix, self.encode(fields), self.tpdu)

    def authentic(self, payload: bytes, fields: dict[str, str]) -> bool:
        """Whether a received message carries our MAC (always, without a key)."""
        return self.mac_key is None or mac_ok(payload, fields, self.mac_key)


@dataclass(frozen=True)
class Reply:
    """How one request ended; ``fields`` only when a response came."""

    status: str
    done: float
    fields: dict[str, str] | None = None


@dataclass
class WireCounters:
    """Problems seen below the request level, shared by all connections of a run."""

    undecodable: int = 0
    unmatched: int = 0  # includes responses that came after their timeout
    answered: int = 0  # requests the server sent us (e.g. 0800 echo test)
    connect_failed: int = 0


class TerminalProtocol(Protocol):
    """One connection speaking as one terminal (or host link)."""

    def __init__(
        self,
        identity: Identity,
        framing: Framing,
        clock: IReactorTime,
        timeout: float,
        counters: WireCounters,
        macs: ResponseMacs | None = None,
    ) -> None:
        self.identity = identity
        self.connected_now = False
        self.signed_on = False
        self._framing = framing
        self._clock = clock
        self._timeout = timeout
        self.counters = counters
        self._macs = macs  # where responses to ``send_frame(..., later=True)`` go
        self.closed: Deferred[None] = Deferred()
        self._decoder = FrameDecoder(framing.prefix, framing.max_frame, framing.tpdu is not None)
        # match key -> (waiting request, its timer, whether its MAC is checked later)
        self._pending: dict[MatchKey, tuple[Deferred[Reply], IDelayedCall, bool]] = {}

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        """Small frames must not wait for Nagle's algorithm: it would be measured as latency."""
        self.connected_now = True
        self.transport.setTcpNoDelay(True)

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        """Resolve every waiting request now rather than at its timeout."""
        self.connected_now = False
        pending, self._pending = self._pending, {}
        for deferred, timer, _ in pending.values():
            timer.cancel()
            deferred.callback(Reply(LOST, self._clock.seconds()))
        if not self.closed.called:  # a close-wait may have given up (cancelled) already
            self.closed.callback(None)

    def request(self, fields: dict[str, str], later: bool = False) -> Deferred[Reply]:
        """Build and send one request; the Deferred fires with its Reply (never errbacks)."""
        try:
            frame = self._framing.frame(fields)
        except IsoFormatError:
            return _fired(Reply(ERROR, self._clock.seconds()))
        return self.send_frame(match_key(fields), frame, later)

    def send_frame(self, key: MatchKey, frame: bytes, later: bool = False) -> Deferred[Reply]:
        """Send a ready frame whose response matches ``key``.

        ``later``: keep the response's MAC for ``ResponseMacs.verify`` instead
        of checking it now (needs the ``macs`` given at construction).
        """
        if not self.connected_now:
            return _fired(Reply(LOST, self._clock.seconds()))
        if key in self._pending:
            return _fired(Reply(ERROR, self._clock.seconds()))
        deferred: Deferred[Reply] = Deferred()
        timer = self._clock.callLater(self._timeout, self._expire, key)
        self._pending[key] = (deferred, timer, later and self._macs is not None)
        self.transport.write(frame)
        return deferred

    def close(self) -> None:
        """Hang up; waiting requests end as lost."""
        if self.connected_now:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Cut frames; a broken stream cannot be resynchronised, so hang up."""
        try:
            frames = self._decoder.feed(data)
        except IsoFormatError:
            self.counters.undecodable += 1
            self.transport.loseConnection()
            return
        for frame in frames:
            self._on_message(frame.payload, frame.tpdu)

    def _on_message(self, payload: bytes, tpdu: bytes | None) -> None:
        """Responses are read leanly (response.py); requests to us, and oddities, in full."""
        fields = read_response(payload)
        if fields is None or not is_response(fields):
            try:
                fields = decode_message(payload)
            except IsoFormatError:
                self.counters.undecodable += 1
                return
        if int(fields["t"][2]) % 2 == 0:
            self._answer(fields, tpdu)
            return
        entry = self._pending.pop(match_key(fields), None)
        if entry is None:
            self.counters.unmatched += 1
            return
        deferred, timer, later = entry
        timer.cancel()
        if not self._authentic(payload, fields, later):
            deferred.callback(Reply(BAD_MAC, self._clock.seconds()))
            return
        deferred.callback(Reply(OK, self._clock.seconds(), fields))

    def _authentic(self, payload: bytes, fields: dict[str, str], later: bool) -> bool:
        """Check the MAC now, or keep it for after the window (only a missing one fails now)."""
        if self._framing.mac_key is None:
            return True
        if later and self._macs is not None:
            return self._macs.keep(payload, fields)
        return self._framing.authentic(payload, fields)

    def _answer(self, fields: dict[str, str], tpdu: bytes | None) -> None:
        """The switch may probe us (0800 echo test); a real terminal would answer 00."""
        try:
            response = {k: v for k, v in fields.items() if k not in ("p", "1")}
            response |= {"t": response_mti(fields["t"]), "39": "00"}
            payload = self._framing.encode(response)
            out_tpdu = swap_tpdu(tpdu) if tpdu else None
            self.transport.write(encode_frame(self._framing.prefix, payload, out_tpdu))
            self.counters.answered += 1
        except IsoFormatError:
            self.counters.undecodable += 1

    def _expire(self, key: MatchKey) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            entry[0].callback(Reply(TIMEOUT, self._clock.seconds()))


def _fired(reply: Reply) -> Deferred[Reply]:
    deferred: Deferred[Reply] = Deferred()
    deferred.callback(reply)
    return deferred


async def connect(
    reactor: IReactorTCP,
    host: str,
    port: int,
    protocol: TerminalProtocol,
    timeout: float,
) -> TerminalProtocol | None:
    """Open one connection; None (and a counted failure) if the target refuses."""
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=max(1, int(timeout)))
    try:
        return await connectProtocol(endpoint, protocol)
    except (ConnectError, DNSLookupError):
        protocol.counters.connect_failed += 1
        return None
