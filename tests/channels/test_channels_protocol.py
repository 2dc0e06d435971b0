"""A channel sends the bytes a handler gives it as they are, and encodes bare fields itself."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport

from channels.protocol import IsoConnection
from iso.dialect import Encoded, decode_message, encode_message
from iso.framing import PREFIXES, encode_frame, swap_tpdu
from switch.config import ChannelSettings
from switch.transaction import Origin

REQUEST = {"t": "0800", "7": "1122063000", "11": "000001", "70": "301"}
ANSWER = {"t": "0810", "7": "1122063000", "11": "000001", "39": "00", "70": "301"}
TPDU = bytes.fromhex("6000120034")


class Answering:
    """A handler that answers every request with ``answer``."""

    def __init__(self, answer: dict[str, str] | Encoded) -> None:
        self.answer = answer

    def handle(self, request: dict[str, str], origin: Origin, raw: bytes) -> Deferred[Any]:
        return succeed(self.answer)

    def malformed(self, partial: dict[str, str], field: str | None, origin: Origin) -> None:
        return None


class TcpTransport(StringTransport):
    connected = True

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass


def _exchange(answer: dict[str, str] | Encoded, framing: str, tpdu: bool) -> bytes:
    settings = ChannelSettings("test", "ATM", 0, framing=framing, tpdu=tpdu)
    connection = IsoConnection(settings, Answering(answer), Origin("test", "ATM"), lambda _: None)
    transport = TcpTransport()
    connection.makeConnection(transport)
    prefix = PREFIXES[framing]
    connection.dataReceived(encode_frame(prefix, encode_message(REQUEST), TPDU if tpdu else None))
    connection.setTimeout(None)
    return transport.value()


@pytest.mark.parametrize(("framing", "tpdu"), [("binary2", False), ("ascii4", True)])
def test_channel_sends_encoded_bytes_as_given(framing: str, tpdu: bool) -> None:
    # Bytes that differ from the fields' encoding show which of the two went out.
    marked = Encoded(dict(ANSWER), encode_message({**ANSWER, "39": "05"}))
    sent = _exchange(marked, framing, tpdu)
    expected = encode_frame(PREFIXES[framing], marked.raw, swap_tpdu(TPDU) if tpdu else None)
    assert sent == expected


def test_channel_encodes_bare_fields() -> None:
    sent = _exchange(dict(ANSWER), "binary2", False)
    assert decode_message(sent[2:]) == decode_message(encode_message(ANSWER))
