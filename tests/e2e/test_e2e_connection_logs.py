"""Operators see connections come and go (issue 10, item 5): opened and closed with the
peer and the reason, and a frame that closes a connection named at warning level."""

from __future__ import annotations

import socket
import struct
import time

from tests.switch_process import SwitchProcess


def _log_lines_with(proc: SwitchProcess, *parts: str, wait: float = 30.0) -> list[str]:
    deadline = time.monotonic() + wait
    while True:
        lines = [x for x in proc.log_text().splitlines() if all(p in x for p in parts)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_connections_are_logged_with_peer_and_reason(switch: SwitchProcess) -> None:
    with socket.create_connection(("127.0.0.1", switch.ports["host"]), timeout=30) as sock:
        peer = f"127.0.0.1:{sock.getsockname()[1]}"
        assert _log_lines_with(switch, "connection opened", "channel=host", f"peer={peer}")
    closed = _log_lines_with(switch, "connection closed", f"peer={peer}")
    assert closed and "reason=" in closed[0] and "in_flight=0" in closed[0]
    assert "terminal=None" not in switch.log_text()


def test_a_frame_that_closes_the_connection_is_named(switch: SwitchProcess) -> None:
    with socket.create_connection(("127.0.0.1", switch.ports["host"]), timeout=30) as sock:
        peer = f"127.0.0.1:{sock.getsockname()[1]}"
        sock.sendall(struct.pack(">H", 3) + b"\x00\x01\x02")  # no readable MTI
        assert sock.recv(100) == b""  # closed, nothing answered
    warned = _log_lines_with(switch, "closing connection", f"peer={peer}")
    assert warned and "warning" in warned[0]
