"""The biller server's faults, switched on and off while it runs (POST /_control/CODE) or
given at its start (--fault): each does what a test of the switch relies on.

No answer time is asserted: a held or unread request is seen through the control
API (``held``, ``stalled``) and ended by changing the faults.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loadtest.biller_process import BillerSimProcess
from loadtest.echo_process import PROJECT_ROOT, child_env
from routing import signing
from routing.biller_sim.catalogue import TEL01
from tests.routing.biller_sim_support import WAIT, InBackground, call, payment, raw_exchange


def held_ids(sim: BillerSimProcess, code: str = "TEL01") -> set[str]:
    return {p["payment_id"] for p in sim.payments(code)}


def wait_until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.02)


def test_error_fault_answers_5xx_and_processes_nothing(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"error": 503})
    answer = call(sim.port, "TEL01", "POST", "/payments", payment("flt-5xx-1"))
    assert (answer.status, answer.json()["error"]) == (503, "unavailable")
    assert answer.signed_by(TEL01.secret)
    assert "flt-5xx-1" not in held_ids(sim)
    sim.control("TEL01", {})
    assert call(sim.port, "TEL01", "POST", "/payments", payment("flt-5xx-1")).status == 200


@pytest.mark.parametrize(
    ("decline", "status"),
    [("account_closed", 422), ("amount_not_accepted", 422), ("unknown_account", 404)],
)
def test_decline_fault_refuses_and_processes_nothing(
    sim: BillerSimProcess, decline: str, status: int
) -> None:
    sim.control("TEL01", {"decline": decline})
    pid = f"flt-decline-{decline}"
    answer = call(sim.port, "TEL01", "POST", "/payments", payment(pid))
    assert (answer.status, answer.json()["error"]) == (status, decline)
    assert pid not in held_ids(sim)


def test_faults_keep_to_their_ops_and_count(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"error": 500, "ops": ["pay"], "count": 2})
    assert call(sim.port, "TEL01", "POST", "/bills/fetch", {"account": "5550001"}).status == 200
    assert (
        call(sim.port, "PWR01", "POST", "/payments", payment("flt-ops-0", "1", 100)).status == 200
    )
    statuses = [call(sim.port, "TEL01", "POST", "/payments", payment("flt-ops-1")).status
                for _ in range(3)]  # fmt: skip
    assert statuses == [500, 500, 200]
    assert sim.control("TEL01")["faults"]["error"] is None  # cleared by itself


def test_delay_fault_still_answers(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"delay": 0.2})
    answer = call(sim.port, "TEL01", "POST", "/payments", payment("flt-delay-1"))
    assert answer.status == 200 and answer.json()["status"] == "accepted"


def test_a_request_whose_client_left_during_the_delay_is_dropped(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"delay": 1.0, "ops": ["pay"]})
    with pytest.raises(TimeoutError):
        call(sim.port, "TEL01", "POST", "/payments", payment("flt-delay-2"), timeout=0.1)
    # A request sent after it on a fresh connection, slowed the same way, comes back
    # only after the dropped one's delay has passed.
    assert call(sim.port, "TEL01", "POST", "/payments", payment("flt-delay-3")).status == 200
    assert "flt-delay-2" not in held_ids(sim)


def test_hang_fault_commits_the_payment_and_holds_its_answer(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"hang": -1, "ops": ["pay"]})
    waiting = InBackground(sim.port, "TEL01", "POST", "/payments", payment("flt-hang-1"))
    wait_until(lambda: sim.control("TEL01")["held"] == 1)
    assert "flt-hang-1" in held_ids(sim)  # accepted, the answer not sent
    status = call(sim.port, "TEL01", "GET", "/payments/flt-hang-1")  # status checks still answer
    assert status.json()["status"] == "accepted"
    sim.control("TEL01", {})  # releases the held answer
    answer = waiting.result()
    assert not isinstance(answer, BaseException)
    assert answer.status == 200 and answer.json()["status"] == "accepted"


def test_hang_fault_with_seconds_answers_after_them(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"hang": 0.1})
    answer = call(sim.port, "TEL01", "POST", "/payments", payment("flt-hang-2"))
    assert answer.status == 200


def test_a_client_that_leaves_a_held_answer_frees_it(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"hang": -1, "ops": ["pay"]})
    with pytest.raises(TimeoutError):
        call(sim.port, "TEL01", "POST", "/payments", payment("flt-hang-3"), timeout=0.2)
    wait_until(lambda: sim.control("TEL01")["held"] == 0)
    assert "flt-hang-3" in held_ids(sim)


def test_stop_reading_fault_leaves_the_request_unread(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"stop_reading": True, "ops": ["pay"]})
    waiting = InBackground(sim.port, "TEL01", "POST", "/payments", payment("flt-stop-1"))
    wait_until(lambda: sim.control("TEL01")["stalled"] == 1)
    assert call(sim.port, "TEL01", "POST", "/bills/fetch", {"account": "5550001"}).status == 200
    sim.control("TEL01", {})  # cuts the stalled connection
    outcome = waiting.result()
    assert isinstance(outcome, OSError | http.client.HTTPException)
    assert "flt-stop-1" not in held_ids(sim)


def test_stop_reading_holds_a_bodiless_status_check_too(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"stop_reading": True, "ops": ["status"]})
    waiting = InBackground(sim.port, "TEL01", "GET", "/payments/flt-stop-2")
    wait_until(lambda: sim.control("TEL01")["stalled"] == 1)
    sim.control("TEL01", {})
    assert isinstance(waiting.result(), OSError | http.client.HTTPException)


@pytest.mark.parametrize("corrupt", ["bad_signature", "not_json", "html", "wrong_types"])
def test_corrupt_answers_come_after_the_payment_is_committed(
    sim: BillerSimProcess, corrupt: str
) -> None:
    sim.control("TEL01", {"corrupt": corrupt, "ops": ["pay"]})
    pid = f"flt-corrupt-{corrupt}"
    answer = call(sim.port, "TEL01", "POST", "/payments", payment(pid))
    assert pid in held_ids(sim)
    spoilt = {
        "bad_signature": lambda: (
            answer.json()["status"] == "accepted" and not answer.signed_by(TEL01.secret)
        ),
        "not_json": lambda: not answer.body.startswith(b"{") and answer.signed_by(TEL01.secret),
        "html": lambda: answer.headers["content-type"] == "text/html" and b"<html>" in answer.body,
        "wrong_types": lambda: (
            answer.json()["status"] == ["accepted"] and answer.signed_by(TEL01.secret)
        ),
    }
    assert spoilt[corrupt]()


def test_cut_body_sends_half_an_answer_and_holds(sim: BillerSimProcess) -> None:
    sim.control("TEL01", {"corrupt": "cut_body", "ops": ["pay"]})
    data = json.dumps(payment("flt-cut-1")).encode()
    signed = signing.headers(TEL01.secret, data, datetime.now(UTC))
    head = (
        f"POST /TEL01/payments HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
        f"X-Timestamp: {signed['X-Timestamp']}\r\nX-Signature: {signed['X-Signature']}\r\n\r\n"
    )
    sock = raw_exchange(sim.port, head.encode() + data)
    received = b""
    while b"\r\n\r\n" not in received or received.endswith(b"\r\n\r\n"):
        received += sock.recv(4096)  # the headers and the first half of the body
    wait_until(lambda: sim.control("TEL01")["held"] == 1)
    sim.control("TEL01", {})  # the connection is then closed, the body unfinished
    while chunk := sock.recv(4096):
        received += chunk
    sock.close()
    head_in, _, body_in = received.partition(b"\r\n\r\n")
    length = int(head_in.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert 0 < len(body_in) < length
    assert "flt-cut-1" in held_ids(sim)


def test_faults_given_at_start(tmp_path: Path) -> None:
    fault = '{"error": 502, "ops": ["fetch"]}'
    with BillerSimProcess(tmp_path, args=["--fault", f"TEL01={fault}"]) as server:
        answer = call(server.port, "TEL01", "POST", "/bills/fetch", {"account": "5550001"})
        assert answer.status == 502
        assert call(server.port, "PWR01", "POST", "/bills/fetch", {"account": "1"}).status == 200


@pytest.mark.parametrize("fault", ["TEL01", "NOPE={}", "TEL01={", 'TEL01={"delay": "slow"}'])
def test_a_bad_fault_at_start_is_one_line_and_status_2(tmp_path: Path, fault: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "routing.biller_sim", "--port", "0",
         "--data", str(tmp_path / "s.sqlite3"), "--fault", fault],
        capture_output=True, text=True, env=child_env(), cwd=PROJECT_ROOT, timeout=WAIT,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("biller_sim: --fault") and done.stderr.count("\n") == 1


def _outward_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_control_api_refuses_clients_off_the_loopback(tmp_path: Path) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("no non-loopback interface to come from")
    with BillerSimProcess(tmp_path, args=["--host", "0.0.0.0"]) as server:
        connection = http.client.HTTPConnection(address, server.port, timeout=WAIT)
        connection.request("POST", "/_control/TEL01", body=b'{"error": 503}')
        answer = connection.getresponse()
        assert (answer.status, json.loads(answer.read())["error"]) == (403, "forbidden")
        connection.close()
        assert server.control("TEL01")["faults"]["error"] is None  # loopback still served
        fetched = call(server.port, "TEL01", "POST", "/bills/fetch", {"account": "5550001"})
        assert fetched.status == 200
