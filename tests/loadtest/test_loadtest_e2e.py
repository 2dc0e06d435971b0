"""The generator over real TCP: against the echo server, and against a real switch.

Each run is a separate process, as in use (the Twisted reactor cannot be
restarted inside pytest). Only counts are asserted, never rates or latencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.echo_process import EchoProcess

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--duration", "1", "--warmup", "0.2", "--timeout", "3", "--seed", "7"]


def loadtest(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run ``python -m loadtest`` with a JSON report; return exit code, report, stdout."""
    report = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", *args, *SHORT, "--json", str(report)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return done.returncode, data, done.stdout + done.stderr


def assert_clean(summary: dict[str, Any]) -> None:
    assert summary["responses"] > 0
    assert summary["timeouts"] == 0
    assert summary["errors"] == {}
    assert set(summary["response_codes"]) <= {"inquiry", "payment", "reversal"}


def test_closed_loop_against_echo_with_idle_connections(tmp_path: Path) -> None:
    with EchoProcess() as echo:
        code, summary, out = loadtest(
            tmp_path,
            "run",
            "--port",
            str(echo.port),
            "--connections",
            "3",
            "--concurrency",
            "2",
            "--idle-connections",
            "4",
        )
    assert code == 0, out
    assert_clean(summary)
    assert summary["signed_on"] == 3
    assert summary["idle"]["signed_on_at_end"] == 4
    assert "latency ms p50" in out and "response codes" in out


def test_fixed_rate_pos_with_ascii_length_and_tpdu(tmp_path: Path) -> None:
    with EchoProcess("ascii4", tpdu=True) as echo:
        code, summary, out = loadtest(
            tmp_path,
            "run",
            "--port",
            str(echo.port),
            "--channel",
            "pos",
            "--rate",
            "40",
            "--connections",
            "2",
            "--framing",
            "ascii4",
            "--tpdu",
            "6000010000",
            "--no-discover",
        )
    assert code == 0, out
    assert_clean(summary)
    assert summary["mode"] == "rate"


def test_compare_reports_a_ratio(tmp_path: Path) -> None:
    with EchoProcess() as target:
        code, report, out = loadtest(
            tmp_path,
            "compare",
            "--port",
            str(target.port),
            "--channel",
            "host",
            "--connections",
            "2",
        )
    assert code == 0, out
    assert_clean(report["echo"])
    assert_clean(report["switch"])
    assert report["ratio"] is not None
    assert "switch/echo responses per second" in out


def test_against_the_switch_with_ledger_check(tmp_path: Path, switch: Any) -> None:
    code, summary, out = loadtest(
        tmp_path,
        "run",
        "--port",
        str(switch.ports["atm"]),
        "--connections",
        "3",
        "--db",
        switch.db_url,
    )
    assert code == 0, out
    assert_clean(summary)
    assert summary["ledger_check"]["ok"], summary["ledger_check"]
    assert "ledger check: OK" in out


@pytest.mark.parametrize("argv", [["run", "--mix", "refund=1"], ["run", "--connections", "0"]])
def test_bad_arguments_exit_2(tmp_path: Path, argv: list[str]) -> None:
    code, _, out = loadtest(tmp_path, *argv)
    assert code == 2, out
