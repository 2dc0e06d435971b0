"""The biller server on a reactor of the caller's (how the demo switch can host it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.biller_sim.server import serve
from tests.hsm.hsm_support import ReactorThread
from tests.routing.biller_sim_support import call, payment


@pytest.fixture
def reactor_thread() -> Iterator[ReactorThread]:
    thread = ReactorThread()
    thread.start()
    yield thread
    thread.stop()


def test_serve_runs_the_whole_server_on_a_given_reactor(
    reactor_thread: ReactorThread, tmp_path: Path
) -> None:
    data = str(tmp_path / "billers.sqlite3")
    listening, store, board = reactor_thread.call(
        serve, reactor_thread.reactor, data, "127.0.0.1", 0
    )
    port = listening.getHost().port
    try:
        answer = call(port, "TEL01", "POST", "/payments", payment("inproc-1", "5550001", 800))
        assert answer.status == 200 and answer.json()["receipt"].startswith("VAT")
        assert call(port, "TEL01", "GET", "/payments/inproc-1").json()["status"] == "accepted"
    finally:
        reactor_thread.call(listening.stopListening)
