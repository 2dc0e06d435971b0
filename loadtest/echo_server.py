"""A bare ISO 8583 responder: the ceiling the switch is measured against.

Absolute TPS depends on the machine; the ratio switch/echo from the same run
on the same box does not (much). So this server does the minimum any ISO 8583
server must do - frame, decode with pyiso8583, set the response MTI and
DE 39 = 00, encode, write - and nothing else: no validation, no state.
With a MAC key it also MACs every answer (X9.19), so a keyed run's baseline
includes the MAC work the generator does on both sides of the wire.
"""

from __future__ import annotations

from typing import Any

import iso8583
from twisted.internet.protocol import Factory, Protocol

from iso.dialect import SPEC, response_mti
from iso.errors import IsoFormatError
from iso.framing import PREFIXES, FrameDecoder, encode_frame, swap_tpdu
from loadtest.security import signed_message

LISTENING = "echo-server listening on"


class EchoProtocol(Protocol):
    """Answers every request frame; a broken stream closes the connection."""

    def __init__(self, framing: str, tpdu: bool, mac_key: bytes | None = None) -> None:
        self._prefix = PREFIXES[framing]
        self._decoder = FrameDecoder(self._prefix, tpdu=tpdu)
        self._mac_key = mac_key

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        try:
            frames = self._decoder.feed(data)
        except IsoFormatError:
            self.transport.loseConnection()
            return
        out = [self._answer(frame.payload, frame.tpdu) for frame in frames]
        self.transport.write(b"".join(chunk for chunk in out if chunk))

    def _answer(self, payload: bytes, tpdu: bytes | None) -> bytes | None:
        """Echo the request as its response; None for anything not answerable."""
        try:
            fields, _ = iso8583.decode(payload, SPEC)
            fields["t"] = response_mti(fields["t"])
            fields["39"] = "00"
            raw = self._encode(fields)
            return encode_frame(self._prefix, raw, swap_tpdu(tpdu) if tpdu else None)
        except (iso8583.DecodeError, iso8583.EncodeError, IsoFormatError):
            return None

    def _encode(self, fields: dict[str, str]) -> bytes:
        if self._mac_key is not None:
            return signed_message(fields, self._mac_key)
        raw, _ = iso8583.encode(fields, SPEC)
        return bytes(raw)


class EchoFactory(Factory):
    def __init__(
        self, framing: str = "binary2", tpdu: bool = False, mac_key: bytes | None = None
    ) -> None:
        self._framing = framing
        self._tpdu = tpdu
        self._mac_key = mac_key

    def buildProtocol(self, addr: Any) -> EchoProtocol:  # noqa: N802
        return EchoProtocol(self._framing, self._tpdu, self._mac_key)


def serve(host: str, port: int, framing: str, tpdu: bool, mac_key: bytes | None = None) -> int:
    """Run until killed; prints the bound port first so a parent can use port 0."""
    from twisted.internet import reactor

    factory = EchoFactory(framing, tpdu, mac_key)
    listener = reactor.listenTCP(port, factory, backlog=1024, interface=host)
    print(f"{LISTENING} {host}:{listener.getHost().port}", flush=True)
    reactor.run()
    return 0
