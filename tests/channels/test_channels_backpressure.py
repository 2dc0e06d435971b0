"""Back-pressure on a channel, over real TCP: a channel on a private reactor, a blocking client.

The channel (``channels.listener.Channel``) runs on a reactor of the tests'
own in a background thread (``tests.hsm.hsm_support.ReactorThread``); the
handler stands in for the pipeline so the tests can count what was
dispatched and hold answers back. What the switch buffers is read from the
server side: the transport's write buffer and the handler's counts.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from channels.listener import Channel
from channels.protocol import IsoConnection
from iso.dialect import Encoded, encode_message
from iso.framing import BINARY2, encode_frame
from switch.config import ChannelSettings
from switch.transaction import Origin
from tests.hsm.hsm_support import WAIT, ReactorThread, read_exactly

ANSWER_SIZE = 4000  # bytes per answer: answers outweigh requests, as a MACed 0210 does
TWISTED_BUFFER = 65536  # a transport's write buffer limit (FileDescriptor.bufferSize)


def echo(stan: int) -> bytes:
    fields = {"t": "0800", "7": "1201093000", "11": f"{stan:06d}", "70": "301"}
    return encode_frame(BINARY2, encode_message(fields))


class Counting:
    """Answers at once with ``ANSWER_SIZE`` bytes; counts requests and what was buffered."""

    def __init__(self) -> None:
        self.dispatched = 0
        self.connection: IsoConnection | None = None
        self.most_buffered = 0  # the transport's write buffer, seen at each request

    def handle(self, request: dict[str, str], origin: Origin, raw: bytes) -> Deferred[Any]:
        self.dispatched += 1
        if self.connection is not None:
            self.most_buffered = max(self.most_buffered, buffered(self.connection))
        return succeed(Encoded(request, b"A" * ANSWER_SIZE))

    def malformed(self, partial: dict[str, str], field: str | None, origin: Origin) -> None:
        return None


class Holding:
    """Keeps every request's Deferred until the test releases it."""

    def __init__(self) -> None:
        self.dispatched = 0
        self.held: list[Deferred[Any]] = []
        self.most_held = 0

    def handle(self, request: dict[str, str], origin: Origin, raw: bytes) -> Deferred[Any]:
        self.dispatched += 1
        d: Deferred[Any] = Deferred()
        d.request = request  # type: ignore[attr-defined]
        self.held.append(d)
        self.most_held = max(self.most_held, len(self.held))
        return d

    def release(self) -> int:
        """Answer every held request (on the reactor); returns how many."""
        held, self.held = self.held, []
        for d in held:
            d.callback({**d.request, "t": "0810", "39": "00"})  # type: ignore[attr-defined]
        return len(held)

    def malformed(self, partial: dict[str, str], field: str | None, origin: Origin) -> None:
        return None


def buffered(connection: IsoConnection) -> int:
    """Bytes the server's transport holds unsent (Twisted's FileDescriptor buffers)."""
    t: Any = connection.transport
    return len(t.dataBuffer) - t.offset + t._tempDataLen


@pytest.fixture(scope="module")
def reactor_thread() -> Iterator[ReactorThread]:
    thread = ReactorThread()
    thread.start()
    yield thread
    thread.stop()


def _listen(thread: ReactorThread, handler: Any, max_in_flight: int) -> Channel:
    settings = ChannelSettings("test", "ATM", 0, max_in_flight=max_in_flight)
    channel = Channel(thread.reactor, settings, handler)
    thread.call(channel.start)
    return channel


def _port(channel: Channel) -> int:
    return int(channel._port.getHost().port)


def _eventually(thread: ReactorThread, check: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until ``check``, evaluated on the reactor thread, holds."""
    deadline = time.monotonic() + WAIT
    while not thread.call(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.02)


def _the_connection(thread: ReactorThread, channel: Channel) -> IsoConnection:
    _eventually(thread, lambda: len(channel.factory.connections) == 1, "the connection")
    return thread.call(lambda: next(iter(channel.factory.connections)))


def _read_frames(sock: socket.socket, n: int) -> list[bytes]:
    frames = []
    for _ in range(n):
        (length,) = struct.unpack(">H", read_exactly(sock, 2))
        frames.append(read_exactly(sock, length))
    return frames


def test_a_peer_that_never_reads_holds_a_bounded_buffer(reactor_thread: ReactorThread) -> None:
    handler = Counting()
    max_in_flight = 16
    channel = _listen(reactor_thread, handler, max_in_flight)
    requests = 500  # 2 MB of answers: far more than the kernel's socket buffers hold
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(WAIT)
            sock.connect(("127.0.0.1", _port(channel)))
            conn = _the_connection(reactor_thread, channel)
            handler.connection = conn

            def small_kernel_buffer() -> None:  # so that the switch's own buffer is what fills
                conn.transport.getHandle().setsockopt(  # type: ignore[union-attr]
                    socket.SOL_SOCKET, socket.SO_SNDBUF, 16384
                )

            reactor_thread.call(small_kernel_buffer)
            sender = threading.Thread(
                target=sock.sendall, args=(b"".join(echo(i) for i in range(requests)),)
            )
            sender.start()  # may block while the switch does not read: that is the point
            _eventually(
                reactor_thread,
                lambda: handler.dispatched == requests or not getattr(conn, "reading", True),
                "all dispatched, or reading paused",
            )
            # The bound: the transport's limit, plus the answers of requests already taken.
            bound = TWISTED_BUFFER + (max_in_flight + 1) * (ANSWER_SIZE + 2)
            held = reactor_thread.call(buffered, conn)
            assert held <= bound, f"{held} bytes buffered for a peer that does not read"
            assert handler.most_buffered <= bound
            assert reactor_thread.call(lambda: handler.dispatched) < requests
            # Once the peer reads, every answer comes, and reading resumes.
            frames = _read_frames(sock, requests)
            sender.join(WAIT)
            assert len(frames) == requests
            assert all(len(f) == ANSWER_SIZE for f in frames)
            assert handler.most_buffered <= bound
    finally:
        reactor_thread.call(channel.stop_listening)


def test_frames_past_max_in_flight_in_one_read_wait_for_room(
    reactor_thread: ReactorThread,
) -> None:
    handler = Holding()
    channel = _listen(reactor_thread, handler, max_in_flight=4)
    try:
        with socket.create_connection(("127.0.0.1", _port(channel)), timeout=WAIT) as sock:
            sock.sendall(b"".join(echo(i) for i in range(12)))  # one write: one read, likely
            conn = _the_connection(reactor_thread, channel)
            _eventually(
                reactor_thread,
                lambda: (
                    handler.dispatched == 12
                    or (handler.dispatched == 4 and getattr(conn, "waiting", 0) == 8)
                ),
                "the twelve frames read",
            )
            assert reactor_thread.call(lambda: handler.dispatched) == 4
            answers: list[bytes] = []
            while len(answers) < 12:
                _eventually(reactor_thread, lambda: bool(handler.held), "a request dispatched")
                answers += _read_frames(sock, reactor_thread.call(handler.release))
            assert handler.most_held == 4
            assert reactor_thread.call(lambda: conn.in_flight) == 0
    finally:
        reactor_thread.call(channel.stop_listening)
