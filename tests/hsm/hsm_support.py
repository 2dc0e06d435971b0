"""Helpers of the HSM tests: a private reactor in a thread, keys with known clear values.

The reactor is a fresh ``SelectReactor`` that is never installed as the
global one, run in a daemon thread for the whole session: the simulator
server and the client live on it, and the tests (in the main thread) hand it
calls and wait for their Deferreds, each wait bounded by ``WAIT``. Nothing
else in the test run can be disturbed by it, and it needs no pytest plugin.
"""

from __future__ import annotations

import concurrent.futures
import functools
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from hsm_sim.crypto import lmk
from hsm_sim.interface import KeyUnderLmk

WAIT = 30.0  # seconds: the bound of every wait (never reached when all is well)


class ReactorThread:
    """A reactor of the tests' own, running in a background thread."""

    def __init__(self) -> None:
        self.reactor = SelectReactor()
        self._thread = threading.Thread(
            target=self.reactor.run,
            kwargs={"installSignalHandlers": False},
            name="hsm-tests-reactor",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(WAIT)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``function`` on the reactor; its (Deferred's) result, or its error raised here."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def failed(failure: Failure) -> None:
            future.set_exception(failure.value)

        def run() -> None:
            maybeDeferred(function, *args, **kwargs).addCallbacks(future.set_result, failed)

        self.reactor.callFromThread(run)
        return future.result(timeout=WAIT)


class ClockedReactor:
    """The test reactor for sockets, a ``Clock`` for time: a client made on it has time
    limits that pass only when a test advances the clock (``expire``).

    A successful call is then never bounded by a time limit, however slow the
    machine, and a time-out happens at a point the test chooses, not after a sleep.
    Connection attempts still use the real reactor's timer (with the client's time
    limit, which tests keep generous).
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.clock = Clock()

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, f, *args, **kw)

    def seconds(self) -> float:
        return self.clock.seconds()

    def getDelayedCalls(self) -> list[Any]:
        return list(self.clock.getDelayedCalls())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


def started(thread: ReactorThread, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """Call ``function`` on the reactor and return its Deferred without waiting for it."""
    made: list[Deferred[Any]] = []
    thread.call(lambda: made.append(maybeDeferred(function, *args)))
    return made[0]


def waited(thread: ReactorThread, d: Deferred[Any]) -> Any:
    """The result of ``d`` (from ``started``) once it fires; its error raised here."""
    return thread.call(lambda: d)


def expire(thread: ReactorThread, reactor: ClockedReactor, seconds: float) -> None:
    """Let ``seconds`` pass on ``reactor``'s clock (its due timers run, on the reactor)."""
    thread.call(reactor.clock.advance, seconds)


class Blocking:
    """An HSM whose operations are run on the reactor thread and waited for."""

    def __init__(self, hsm: Any, thread: ReactorThread) -> None:
        self.hsm = hsm
        self._thread = thread

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return functools.partial(self._thread.call, getattr(self.hsm, name))


def under_lmk(key_type: str, clear_hex: str, scheme: str = "U") -> KeyUnderLmk:
    """A key of known clear value as the switch would store it (under the test LMK)."""
    return KeyUnderLmk(
        key_type, lmk.encrypt_key(lmk.TEST_LMK, key_type, bytes.fromhex(clear_hex), scheme)
    )


# ---------------------------------------------------------------- raw frames


def frame(payload: bytes) -> bytes:
    """2-byte big-endian length, then the payload (header + command)."""
    return struct.pack(">H", len(payload)) + payload


def read_frame(sock: socket.socket) -> bytes:
    """One frame's payload from a blocking socket."""
    (length,) = struct.unpack(">H", read_exactly(sock, 2))
    return read_exactly(sock, length)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    return sock


def exchange(port: int, payload: bytes) -> bytes:
    """Send one frame on a new connection and return the answer's payload."""
    with connect(port) as sock:
        sock.sendall(frame(payload))
        return read_frame(sock)
