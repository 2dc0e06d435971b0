"""Framing: length prefixes, stream reassembly, TPDU."""

import pytest

from iso.errors import FrameTooLarge, IsoFormatError
from iso.framing import (
    ASCII4,
    BINARY2,
    PREFIXES,
    Frame,
    FrameDecoder,
    LengthPrefix,
    encode_frame,
    swap_tpdu,
)

TPDU = b"\x60\x00\x01\x00\x02"
MSG_A = b"0800" + bytes(8) + b"A"
MSG_B = b"0810" + bytes(8) + b"BB"


def test_prefix_table() -> None:
    assert PREFIXES == {"binary2": BINARY2, "ascii4": ASCII4}
    assert (BINARY2.size, ASCII4.size) == (2, 4)


@pytest.mark.parametrize(
    ("prefix", "n", "wire"),
    [(BINARY2, 0, b"\x00\x00"), (BINARY2, 300, b"\x01\x2c"), (BINARY2, 65535, b"\xff\xff"),
     (ASCII4, 0, b"0000"), (ASCII4, 300, b"0300"), (ASCII4, 9999, b"9999")],
)  # fmt: skip
def test_pack_unpack(prefix: LengthPrefix, n: int, wire: bytes) -> None:
    assert prefix.pack(n) == wire
    assert prefix.unpack(wire) == n


@pytest.mark.parametrize(("prefix", "n"), [(BINARY2, 65536), (BINARY2, -1), (ASCII4, 10000)])
def test_pack_refuses_what_does_not_fit(prefix: LengthPrefix, n: int) -> None:
    with pytest.raises(FrameTooLarge):
        prefix.pack(n)


@pytest.mark.parametrize(
    ("prefix", "wire"),
    [(ASCII4, b"12a4"), (ASCII4, b" 123"), (ASCII4, b"-123"), (ASCII4, b"\x00\x01\x02\x03"),
     (ASCII4, "١٢٣٤".encode()[:4]), (ASCII4, b"123"), (BINARY2, b"\x01")],
)  # fmt: skip
def test_unpack_rejects_garbage(prefix: LengthPrefix, wire: bytes) -> None:
    with pytest.raises(IsoFormatError):
        prefix.unpack(wire)


@pytest.mark.parametrize("prefix", [BINARY2, ASCII4], ids=["binary2", "ascii4"])
def test_several_frames_in_one_feed(prefix: LengthPrefix) -> None:
    stream = encode_frame(prefix, MSG_A) + encode_frame(prefix, MSG_B) + encode_frame(prefix, MSG_A)
    assert FrameDecoder(prefix).feed(stream) == [Frame(MSG_A), Frame(MSG_B), Frame(MSG_A)]


@pytest.mark.parametrize("prefix", [BINARY2, ASCII4], ids=["binary2", "ascii4"])
def test_byte_by_byte(prefix: LengthPrefix) -> None:
    stream = encode_frame(prefix, MSG_A) + encode_frame(prefix, MSG_B)
    decoder = FrameDecoder(prefix)
    frames = [frame for byte in stream for frame in decoder.feed(bytes([byte]))]
    assert frames == [Frame(MSG_A), Frame(MSG_B)]


def test_partial_frame_waits_for_the_rest() -> None:
    decoder = FrameDecoder(BINARY2)
    stream = encode_frame(BINARY2, MSG_A) + encode_frame(BINARY2, MSG_B)
    cut = len(MSG_A) + 2 + 5
    assert decoder.feed(stream[:cut]) == [Frame(MSG_A)]
    assert decoder.feed(b"") == []
    assert decoder.feed(stream[cut:]) == [Frame(MSG_B)]


def test_payload_is_bytes() -> None:
    (frame,) = FrameDecoder(BINARY2).feed(bytearray(encode_frame(BINARY2, MSG_A)))
    assert type(frame.payload) is bytes


def test_frame_at_the_limit_is_accepted() -> None:
    payload = b"x" * 8192
    assert FrameDecoder(BINARY2).feed(encode_frame(BINARY2, payload)) == [Frame(payload)]


def test_frame_over_the_limit_is_refused_before_its_body_arrives() -> None:
    decoder = FrameDecoder(BINARY2)
    with pytest.raises(FrameTooLarge):
        decoder.feed(BINARY2.pack(8193))


def test_custom_limit() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder(ASCII4, max_frame=100).feed(b"0101")


@pytest.mark.parametrize(
    ("prefix", "stream"),
    [(BINARY2, b"\x00\x00"), (ASCII4, b"0000"), (ASCII4, b"GET / HTTP/1.1\r\n"),
     (ASCII4, b"\x16\x03\x01\x02\x00")],
)  # fmt: skip
def test_empty_or_garbage_length(prefix: LengthPrefix, stream: bytes) -> None:
    with pytest.raises(IsoFormatError):
        FrameDecoder(prefix).feed(stream)


def test_http_on_a_binary_channel_is_too_large() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder(BINARY2).feed(b"GET / HTTP/1.1\r\n")


def test_tpdu_is_split_off() -> None:
    stream = encode_frame(BINARY2, MSG_A, TPDU)
    assert stream[:2] == (len(TPDU) + len(MSG_A)).to_bytes(2, "big")
    decoder = FrameDecoder(BINARY2, tpdu=True)
    assert decoder.feed(stream + stream) == [Frame(MSG_A, TPDU), Frame(MSG_A, TPDU)]


@pytest.mark.parametrize("body", [b"\x60", b"\x60\x00\x01\x00", TPDU])
def test_tpdu_channel_rejects_short_body(body: bytes) -> None:
    with pytest.raises(IsoFormatError):
        FrameDecoder(BINARY2, tpdu=True).feed(BINARY2.pack(len(body)) + body)


def test_without_tpdu_the_body_is_the_payload() -> None:
    (frame,) = FrameDecoder(BINARY2).feed(encode_frame(BINARY2, MSG_A, TPDU))
    assert frame == Frame(TPDU + MSG_A)


def test_encode_frame() -> None:
    assert encode_frame(BINARY2, b"abc") == b"\x00\x03abc"
    assert encode_frame(ASCII4, b"abc", TPDU) == b"0008" + TPDU + b"abc"


@pytest.mark.parametrize(("payload", "tpdu"), [(b"", None), (b"abc", b"\x60\x00"), (b"", TPDU)])
def test_encode_frame_rejects(payload: bytes, tpdu: bytes | None) -> None:
    with pytest.raises(IsoFormatError):
        encode_frame(BINARY2, payload, tpdu)


def test_encode_frame_too_large_for_prefix() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame(ASCII4, b"x" * 10000)


def test_swap_tpdu() -> None:
    assert swap_tpdu(b"\x60\x00\x01\x00\x02") == b"\x60\x00\x02\x00\x01"
    assert swap_tpdu(swap_tpdu(TPDU)) == TPDU


@pytest.mark.parametrize("tpdu", [b"", b"\x60\x00\x01\x00", TPDU + b"\x00"])
def test_swap_tpdu_rejects_wrong_size(tpdu: bytes) -> None:
    with pytest.raises(IsoFormatError):
        swap_tpdu(tpdu)


def test_frame_is_frozen() -> None:
    frame = Frame(MSG_A)
    with pytest.raises(AttributeError):
        frame.payload = b""  # type: ignore[misc]
