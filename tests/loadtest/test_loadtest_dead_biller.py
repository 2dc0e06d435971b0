"""``bench --biller-sim --dead-biller CODE --rate N`` (loadtest/dead_biller.py): the live
billers' payments open loop beside a stream paying a dead biller, reported apart.

Only counts and codes are asserted, never rates or latencies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.config import RunConfig
from loadtest.dead_biller import DeadBillerUsage, split
from tests.loadtest.test_loadtest_e2e import loadtest


def test_the_streams_get_terminals_of_their_own() -> None:
    live, dead = split(RunConfig(rate=100, biller="PWR01"), "TEL01", 50, None)
    assert dead.terminals == ("ATM00005",) and "ATM00005" not in (live.terminals or ())
    assert (dead.biller, dead.rate, dead.discover, dead.mix["payment"]) == ("TEL01", 50, False, 100)
    assert sum(dead.mix.values()) == dead.mix["payment"]
    assert live.rate == 100 and live.biller == "PWR01"


@pytest.mark.parametrize(
    ("cfg", "dead_terminals", "says"),
    [
        (RunConfig(biller="PWR01"), None, "needs --rate"),
        (RunConfig(rate=10, biller="TEL01"), None, "live stream's --biller too"),
        (RunConfig(rate=10, channel="host"), None, "terminal channel"),
        (RunConfig(rate=10, terminals=("ATM00001",)), ("ATM00001",), "terminals of their own"),
        (RunConfig(rate=10, mac_key=bytes(16)), None, "cannot MAC"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    cfg: RunConfig, dead_terminals: tuple[str, ...] | None, says: str
) -> None:
    with pytest.raises(DeadBillerUsage, match=says):
        split(cfg, "TEL01", 10, dead_terminals)


def test_bench_pays_a_dead_biller_beside_a_live_one(tmp_path: Path) -> None:
    code, report, out = loadtest(
        tmp_path,
        "bench",
        "--biller-sim",
        "--biller",
        "PWR01",
        "--no-discover",
        "--mix",
        "payment=100",
        "--min-amount",
        "100",
        "--max-amount",
        "500",
        "--rate",
        "40",
        "--connections",
        "2",
        "--dead-biller",
        "TEL01",
        "--dead-rate",
        "20",
    )
    assert code == 0, out
    live, dead = report["switch"], report["dead"]
    assert (report["live_biller"], report["dead_biller"]) == ("PWR01", "TEL01")
    assert live["responses"] > 0 and set(live["response_codes"]["payment"]) == {"00"}
    assert dead["responses"] > 0 and set(dead["response_codes"]["payment"]) == {"91"}
    assert live["errors"] == dead["errors"] == {}
    assert "echo" not in report
    assert report["ledger_check"]["ok"]
    assert "== dead biller run ==" in out and "dead TEL01: offered 20/s" in out
