"""``BlockingPayShield``: the payShield client's commands, one at a time over a plain socket.

Operator commands (``billswitch keys``) and the switch's start-up check (which
LMK does the HSM hold?) run before, or without, a reactor. They make a few
calls, one after the other, so one blocking connection does: each method of
the interface returns a Deferred that has already fired, built by the same
code as ``PayShieldClient`` (only the transport differs).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed

from hsm_sim import client
from hsm_sim.codec import encode
from hsm_sim.interface import HsmBadResponse, HsmTimeout, HsmUnavailable
from hsm_sim.layouts import COMMANDS

T = TypeVar("T")


class BlockingPayShield(client.PayShieldClient):
    """The HSM interface over one blocking TCP connection (opened at the first call)."""

    def __init__(self, url: str, header_length: int = 4, timeout: float = 2.0) -> None:
        from twisted.internet import reactor

        super().__init__(url, reactor, header_length, 1, timeout)
        self._address = client.parse_url(url)
        self._socket: socket.socket | None = None
        self._sent = 0

    def _call(
        self,
        command: str,
        values: Mapping[str, str],
        result: Callable[..., T] | None = None,
        *args: Any,
    ) -> Deferred[T]:
        convert = result or client._answer
        try:
            text = command + encode(COMMANDS[command].request, values)
            return succeed(convert(self._exchange(text), command, values, *args))
        except Exception:
            return fail()

    def _exchange(self, text: str) -> str:
        """Send one command, wait for its answer (the text after the header)."""
        header = f"{self._sent % 10**self._header_length:0{self._header_length}d}"
        self._sent += 1
        frame = (header + text).encode("latin-1")
        try:
            connection = self._connect()
            connection.sendall(struct.pack(">H", len(frame)) + frame)
            (length,) = struct.unpack(">H", self._read(connection, 2))
            answer = self._read(connection, length).decode("latin-1")
        except TimeoutError:
            self.close()
            raise HsmTimeout(f"no answer from the HSM within {self._timeout} s") from None
        except OSError as exc:
            self.close()
            raise HsmUnavailable(f"cannot talk to the HSM: {exc.strerror or exc}") from None
        if answer[: self._header_length] != header:
            self.close()
            raise HsmBadResponse("the HSM answered with another header")
        return answer[self._header_length :]

    def _connect(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.create_connection(self._address, timeout=self._timeout)
        return self._socket

    @staticmethod
    def _read(connection: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = connection.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError("connection closed by the HSM")
            data += chunk
        return data

    def close(self) -> Deferred[None]:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        return succeed(None)


def result_of(d: Deferred[T]) -> T:
    """The result of a Deferred that has already fired (raising its failure)."""
    results: list[Any] = []
    d.addBoth(results.append)
    if not results:
        raise RuntimeError("the HSM call did not complete")  # a bug: only fired Deferreds here
    outcome = results[0]
    if hasattr(outcome, "raiseException"):
        outcome.raiseException()
    return outcome  # type: ignore[no-any-return]
