"""MACed and on-us load over real TCP: a switch whose ATM channel requires X9.19,
the bench with its own HSM simulator, and an echo server MACing under another key.

Test-only demo values (README): ATM00001's TAK and TPK, card 9990001000000001
with PIN 1234 and a wallet of 1,000,000 (payments here are 1 minor unit each).
Only counts are asserted, never rates or latencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.echo_process import EchoProcess
from loadtest.security import card_pans
from loadtest.seed import seed_cards
from tests.conftest import BACKENDS, postgres_schema_url
from tests.switch_process import SwitchProcess

ROOT = Path(__file__).resolve().parents[2]
TAK = "FEDCBA98765432100123456789ABCDEF"
TPK = "0123456789ABCDEFFEDCBA9876543210"
CARD = "9990001000000001:1234"
MAC_CHANNEL = '[channels.atm_mac]\nkind = "ATM"\nport = 0\nmac = "x919"\n'
SHORT = ["--duration", "1", "--warmup", "0.2", "--timeout", "3", "--seed", "11"]
KEYED = ["--terminals", "ATM00001", "--mac-key", TAK, "--on-us", CARD, "--tpk", TPK]


@pytest.fixture(scope="module", params=BACKENDS)
def mac_switch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwitchProcess]:
    """A switch (demo data, keys and card) with an extra ATM channel that requires X9.19."""
    home = tmp_path_factory.mktemp("mac_switch")
    urls = (
        iter([f"sqlite:///{home / 'billswitch.db'}"])
        if request.param == "sqlite"
        else postgres_schema_url()
    )
    for url in urls:
        with SwitchProcess.start(home, url, MAC_CHANNEL) as proc:
            yield proc


def loadtest(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """``python -m loadtest ARGS`` with a JSON report: exit code, report, output."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", *args, *SHORT, "--json", str(report)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=180,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return done.returncode, data, done.stdout + done.stderr


def assert_approved_and_clean(summary: dict[str, Any]) -> None:
    assert summary["signed_on"] == summary["connections"]
    assert summary["approved_payments"] > 0
    assert set(summary["response_codes"]["payment"]) == {"00"}
    assert summary["timeouts"] == 0
    assert summary["errors"] == {}  # in particular no bad_mac
    assert summary["mac"] and summary["on_us"]


def test_macd_on_us_run_against_the_switch(tmp_path: Path, mac_switch: SwitchProcess) -> None:
    code, summary, out = loadtest(
        tmp_path,
        "run",
        "--port",
        str(mac_switch.ports["atm_mac"]),
        "--connections",
        "3",
        "--concurrency",
        "2",
        "--db",
        mac_switch.db_url,
        *KEYED,
    )
    assert code == 0, out
    assert_approved_and_clean(summary)
    assert "reversal" in summary["response_codes"]  # DE 128 MACs both ways
    ledger = summary["ledger_check"]
    assert ledger["ok"], ledger
    assert ledger["from_wallet"] == ledger["payments"] > 0


def test_many_cards_each_pay_from_their_own_wallet(
    tmp_path: Path, mac_switch: SwitchProcess
) -> None:
    pans = card_pans(CARD.split(":")[0], 4)
    assert seed_cards(mac_switch.db_url, mac_switch.home, pans[1:], "1234") == 3
    code, summary, out = loadtest(
        tmp_path, "run", "--port", str(mac_switch.ports["atm_mac"]), "--connections", "3",
        "--concurrency", "2", "--mix", "payment=100", "--cards", "4",
        "--db", mac_switch.db_url, *KEYED,
    )  # fmt: skip
    assert code == 0, out
    assert_approved_and_clean(summary)
    macs = summary["response_macs"]
    assert macs["verified"] == macs["checked"] > 0
    ledger = summary["ledger_check"]
    assert ledger["ok"], ledger
    assert ledger["from_wallet"] == ledger["payments"] > 0
    assert ledger["wallets"] == 4


def test_bench_with_mac_and_the_hsm_simulator(tmp_path: Path) -> None:
    code, report, out = loadtest(
        tmp_path,
        "bench",
        "--hsm-sim",
        "--home",
        str(tmp_path / "home"),
        "--connections",
        "2",
        "--mix",
        "payment=100",
        "--cards",
        "3",
        *KEYED,
    )
    assert code == 0, out
    assert_approved_and_clean(report["switch"])
    assert report["echo"]["errors"] == {}  # the echo server MACs its answers too
    assert report["ledger_check"]["ok"], report["ledger_check"]
    assert "registered 2 more cards" in out
    assert report["ledger_check"]["wallets"] == 3
    assert 'mac = "x919"' in (tmp_path / "home" / "bench.toml").read_text()
    assert "hsm_sim: listening" in (tmp_path / "home" / "hsm_sim.log").read_text()


def test_a_wrong_response_mac_fails_the_sign_on(tmp_path: Path) -> None:
    with EchoProcess(mac_key=bytes.fromhex(TPK)) as echo:  # MACs under a key we do not use
        code, summary, out = loadtest(
            tmp_path, "run", "--port", str(echo.port), "--connections", "1", "--mac-key", TAK
        )
    assert code == 3, out  # no sign-on was accepted: nothing measured
    assert summary["errors"] == {"signon_bad_mac": 1}
    assert summary["signed_on"] == 0


def test_on_us_needs_the_tpk(tmp_path: Path) -> None:
    code, _, out = loadtest(tmp_path, "run", "--on-us", CARD)
    assert code == 2 and "--tpk" in out
