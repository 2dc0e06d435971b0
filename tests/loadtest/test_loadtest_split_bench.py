"""The split-payment benchmark (issue 12) against a real switch, briefly: it seeds its
payer codes, pays each code's DL total by payer code over the HOST channel, reverses
some, and its own ledger check passes. Counts only, never rates."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.split_bench import main
from tests.switch_process import SwitchProcess


def test_split_bench_pays_every_code_and_checks_the_ledger(
    switch: SwitchProcess, tmp_path: Path
) -> None:
    report = tmp_path / "split.json"
    args = ["--db", switch.db_url, "--port", str(switch.ports["host"]), "--codes", "12"]
    code = main([*args, "--connections", "3", "--reverse", "4", "--json", str(report)])
    figures = json.loads(report.read_text())
    assert code == 0, figures
    assert figures["codes"] == {"00": 12}
    assert (figures["reversed"], figures["errors"], figures["ledger_problems"]) == (3, {}, [])
