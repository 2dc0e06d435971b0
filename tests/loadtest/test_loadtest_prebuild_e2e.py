"""Prebuilt load over real TCP: MACs checked after the window, the pool running out,
the old on-the-fly path, and a server whose answers carry a wrong MAC.

Test-only demo values (README): ATM00001's TAK and TPK, card 9990001000000001
with PIN 1234. Only counts are asserted, never rates or latencies.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from iso.dialect import decode_message, response_mti
from iso.framing import BINARY2, FrameDecoder, encode_frame
from loadtest.echo_process import EchoProcess
from loadtest.security import signed_message
from tests.loadtest.test_loadtest_e2e import loadtest

TAK_HEX = "FEDCBA98765432100123456789ABCDEF"
TAK = bytes.fromhex(TAK_HEX)
KEYED = [
    "--terminals",
    "ATM00001",
    "--mac-key",
    TAK_HEX,
    "--on-us",
    "9990001000000001:1234",
    "--tpk",
    "0123456789ABCDEFFEDCBA9876543210",
]


@pytest.fixture(scope="module")
def keyed_echo() -> Iterator[EchoProcess]:
    with EchoProcess(mac_key=TAK) as echo:
        yield echo


def test_prebuilt_keyed_load_verifies_every_response_mac_after_the_window(
    tmp_path: Path, keyed_echo: EchoProcess
) -> None:
    code, summary, out = loadtest(
        tmp_path, "run", "--port", str(keyed_echo.port), "--connections", "3",
        "--concurrency", "2", "--cards", "3", *KEYED,
    )  # fmt: skip
    assert code == 0, out
    assert summary["errors"] == {} and summary["responses"] > 0
    macs = summary["response_macs"]
    assert macs["verified"] == macs["checked"] >= summary["responses"]
    assert f"response MACs verified: {macs['checked']} of {macs['checked']}" in out
    built = summary["prebuilt"]
    assert built["requests"] > summary["responses"] and built["reversals"] > 0
    assert "after the prebuilt ran out" not in built["built_live"]
    assert summary["cards"] == 3 and "over 3 cards" in out


def test_a_small_pool_runs_out_and_the_rest_is_built_on_the_fly(
    tmp_path: Path, keyed_echo: EchoProcess
) -> None:
    code, summary, out = loadtest(
        tmp_path, "run", "--port", str(keyed_echo.port), "--connections", "2",
        "--prebuild", "30", *KEYED,
    )  # fmt: skip
    assert code == 0, out
    assert summary["prebuilt"]["requests"] == 30
    assert summary["prebuilt"]["built_live"]["after the prebuilt ran out"] > 0
    assert any("ran out" in note for note in summary["notes"])
    macs = summary["response_macs"]
    assert macs["verified"] == macs["checked"] > 30


def test_prebuild_0_builds_on_the_fly_and_checks_macs_at_once(
    tmp_path: Path, keyed_echo: EchoProcess
) -> None:
    code, summary, out = loadtest(
        tmp_path, "run", "--port", str(keyed_echo.port), "--connections", "2",
        "--prebuild", "0", *KEYED,
    )  # fmt: skip
    assert code == 0, out
    assert summary["errors"] == {} and summary["responses"] > 0
    assert "prebuilt" not in summary and "response_macs" not in summary


class _ForgingHandler(socketserver.BaseRequestHandler):
    """Answers like the echo server, but the MAC of every financial answer is off by a bit."""

    def handle(self) -> None:
        decoder = FrameDecoder(BINARY2)
        while data := self.request.recv(65536):
            out = [self._answer(bytes(frame.payload)) for frame in decoder.feed(data)]
            self.request.sendall(b"".join(out))

    @staticmethod
    def _answer(payload: bytes) -> bytes:
        fields = {k: v for k, v in decode_message(payload).items() if k not in ("p", "1")}
        request_mti = fields["t"]
        fields |= {"t": response_mti(request_mti), "39": "00"}
        raw = signed_message(fields, TAK)
        if request_mti != "0800":
            raw = raw[:-1] + bytes([raw[-1] ^ 1])
        return encode_frame(BINARY2, raw)


@pytest.fixture
def forging_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ForgingHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_wrong_response_mac_is_caught_after_the_window_and_fails_the_run(
    tmp_path: Path, forging_server: int
) -> None:
    code, summary, out = loadtest(
        tmp_path, "run", "--port", str(forging_server), "--connections", "1", *KEYED
    )
    assert code == 4, out
    assert summary["signed_on"] == 1  # sign-ons are MACed right, and checked at once
    macs = summary["response_macs"]
    assert macs["checked"] > 0 and macs["verified"] == 0
    assert summary["errors"]["bad_mac"] == macs["checked"]
    assert "FAILED" in out
