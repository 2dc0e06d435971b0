"""Message framing on a TCP stream (spec section 1).

As in jPOS, where a channel subclass only overrides how the length is read
and written, the framing here is one decoder parametrised by a
``LengthPrefix``: a channel picks "binary2" or "ascii4" from configuration
and, on POS channels, turns the 5-byte TPDU on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from iso.errors import FrameTooLarge, IsoFormatError

TPDU_SIZE = 5


class LengthPrefix(Protocol):
    """How the length of the following frame body is written on the wire."""

    size: int

    def pack(self, n: int) -> bytes:
        """Encode a body length; FrameTooLarge if it does not fit the prefix."""
        ...

    def unpack(self, b: bytes) -> int:
        """Decode ``size`` bytes into a body length; IsoFormatError on garbage."""
        ...


@dataclass(frozen=True)
class BinaryLength:
    """Unsigned big-endian length (the default: 2 bytes, up to 65535)."""

    size: int = 2

    def pack(self, n: int) -> bytes:
        """Encode ``n``; refuse what would silently wrap around."""
        if not 0 <= n < 256**self.size:
            raise FrameTooLarge(f"length does not fit {self.size} bytes")
        return n.to_bytes(self.size, "big")

    def unpack(self, b: bytes) -> int:
        """Any byte pattern is a valid number; only the width is checked."""
        if len(b) != self.size:
            raise IsoFormatError(f"length prefix must be {self.size} bytes")
        return int.from_bytes(b, "big")


@dataclass(frozen=True)
class AsciiLength:
    """Length as zero-padded ASCII decimal digits (4 digits: up to 9999)."""

    size: int = 4

    def pack(self, n: int) -> bytes:
        """Encode ``n`` as digits; refuse what needs more digits than the prefix has."""
        if not 0 <= n < 10**self.size:
            raise FrameTooLarge(f"length does not fit {self.size} digits")
        return str(n).zfill(self.size).encode("ascii")

    def unpack(self, b: bytes) -> int:
        """Decode digits; anything else means the peer does not speak this framing."""
        if len(b) != self.size or not b.isdigit():  # bytes.isdigit is ASCII-only
            raise IsoFormatError("length prefix is not ASCII digits")
        return int(b)


BINARY2: LengthPrefix = BinaryLength(2)
ASCII4: LengthPrefix = AsciiLength(4)
PREFIXES: dict[str, LengthPrefix] = {"binary2": BINARY2, "ascii4": ASCII4}


@dataclass(frozen=True)
class Frame:
    """One framed message: the ISO 8583 bytes and, on TPDU channels, the TPDU."""

    payload: bytes
    tpdu: bytes | None = None


class FrameDecoder:
    """Cut a byte stream into frames, whatever the TCP segmentation.

    After an ``IsoFormatError`` the stream cannot be resynchronised (the next
    length is unknown), so the caller must close the connection and drop the
    decoder; frames returned earlier are unaffected, but complete frames in
    the same ``feed`` call before the bad one are lost with the connection.
    """

    def __init__(self, prefix: LengthPrefix, max_frame: int = 8192, tpdu: bool = False) -> None:
        self._prefix = prefix
        self._max_frame = max_frame
        self._tpdu = tpdu
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Buffer ``data`` and return every frame it completes (zero, one or several)."""
        self._buffer += data
        frames: list[Frame] = []
        while (body := self._next_body()) is not None:
            frames.append(self._split(body))
        return frames

    def _next_body(self) -> bytes | None:
        """Take one complete frame body off the buffer, or None if it is not all here."""
        size = self._prefix.size
        if len(self._buffer) < size:
            return None
        length = self._prefix.unpack(bytes(self._buffer[:size]))
        self._check_length(length)
        if len(self._buffer) < size + length:
            return None
        body = bytes(self._buffer[size : size + length])
        del self._buffer[: size + length]
        return body

    def _check_length(self, length: int) -> None:
        """Refuse before buffering: an oversize length would make us hold megabytes."""
        if length > self._max_frame:
            raise FrameTooLarge(f"frame of {length} bytes exceeds {self._max_frame}")
        if length == 0:
            raise IsoFormatError("empty frame")

    def _split(self, body: bytes) -> Frame:
        """Separate the TPDU (if this channel has one) from the message."""
        if not self._tpdu:
            return Frame(body)
        if len(body) <= TPDU_SIZE:
            raise IsoFormatError("frame holds no message after the TPDU")
        return Frame(body[TPDU_SIZE:], body[:TPDU_SIZE])


def encode_frame(prefix: LengthPrefix, payload: bytes, tpdu: bytes | None = None) -> bytes:
    """Prefix ``payload`` (after the TPDU, if given) with its length."""
    if tpdu is not None and len(tpdu) != TPDU_SIZE:
        raise IsoFormatError(f"TPDU must be {TPDU_SIZE} bytes")
    if not payload:
        raise IsoFormatError("empty message")
    body = (tpdu or b"") + payload
    return prefix.pack(len(body)) + body


def swap_tpdu(tpdu: bytes) -> bytes:
    """TPDU for the response: id(1) kept, destination(2) and source(2) swapped."""
    if len(tpdu) != TPDU_SIZE:
        raise IsoFormatError(f"TPDU must be {TPDU_SIZE} bytes")
    return tpdu[:1] + tpdu[3:5] + tpdu[1:3]
