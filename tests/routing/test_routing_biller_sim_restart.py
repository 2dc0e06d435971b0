"""The biller server's store survives its own SIGKILL: accepted payments and reversals
are there when it comes back, idempotency still holds, and the demo accounts are
not reset. Also its command line through ``billswitch biller-sim``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from loadtest.biller_process import BillerSimProcess
from loadtest.echo_process import PROJECT_ROOT, child_env
from tests.routing.biller_sim_support import WAIT, call, payment


def test_payments_reversals_and_idempotency_survive_a_sigkill(tmp_path: Path) -> None:
    with BillerSimProcess(tmp_path) as server:
        first = {}
        for n in range(5):
            body = payment(f"rst-tel-{n}", "5550002", 1000 + n)
            first[body["payment_id"]] = call(server.port, "TEL01", "POST", "/payments", body)
        prepaid = payment("rst-pwr-1", "88001", 5000)
        first["rst-pwr-1"] = call(server.port, "PWR01", "POST", "/payments", prepaid)
        assert {a.status for a in first.values()} == {200}
        assert call(server.port, "TEL01", "POST", "/payments/rst-tel-4/reversal").status == 200
        port = server.port

        server.kill()
        server.start()

        assert server.port == port  # back where the switch expects it
        tel = {p["payment_id"]: p for p in server.payments("TEL01")}
        assert sorted(tel) == [f"rst-tel-{n}" for n in range(5)]
        assert [tel[f"rst-tel-{n}"]["status"] for n in range(5)] == ["accepted"] * 4 + ["reversed"]
        assert [p["payment_id"] for p in server.payments("PWR01")] == ["rst-pwr-1"]
        # 150000 owed, four payments of 1000..1003 stand (the fifth reversed): not reset.
        assert server.account("TEL01", "5550002")["amount_due"] == 150000 - 4006

        for n in range(4):  # the same id and content answers as before
            again = call(
                server.port,
                "TEL01",
                "POST",
                "/payments",
                payment(f"rst-tel-{n}", "5550002", 1000 + n),
            )
            assert again.json() == first[f"rst-tel-{n}"].json()
        again = call(server.port, "PWR01", "POST", "/payments", prepaid)
        assert again.json()["token"] == first["rst-pwr-1"].json()["token"]
        other = call(server.port, "TEL01", "POST", "/payments", payment("rst-tel-0", "5550002", 1))
        assert other.status == 409
        reversal = call(server.port, "TEL01", "POST", "/payments/rst-tel-4/reversal")
        assert reversal.status == 200
        assert server.account("TEL01", "5550002")["amount_due"] == 150000 - 4006

        new = call(server.port, "TEL01", "POST", "/payments", payment("rst-tel-9", "5550002", 1))
        refs = {a.json()["biller_ref"] for a in first.values()}
        assert new.status == 200 and new.json()["biller_ref"] not in refs


def test_billswitch_biller_sim_help_and_a_port_in_use(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "switch.cli", "biller-sim", *args],
            capture_output=True, text=True, env=child_env(), cwd=PROJECT_ROOT, timeout=WAIT,
        )  # fmt: skip

    shown = run("--help")
    assert shown.returncode == 0
    assert "billswitch biller-sim" in shown.stdout and "--fault" in shown.stdout
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        refused = run("--port", port, "--data", str(tmp_path / "s.sqlite3"))
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"billswitch biller-sim: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in refused.stderr
