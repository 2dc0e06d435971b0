"""Settlement and reconciliation agree (issue 12, "Settlement"), on SQLite and PostgreSQL.

A switch whose business day lags (time zone UTC-12) takes a day of traffic over ISO
8583 on TCP: two acquirers (ATM and POS of 100001, the host link of 200002), two
billers (UTIL01 held, MOB01 outline), reversals full and partial. The totals each
side should have are counted from the answers. The switch is then started again
in UTC+14, a later business day: its start closes the traffic's day, finds it not
settled (a missed day) and settles it. Every total is then checked three ways:
the 0510 of each acquirer for that day, the settlement report, the ledger's
balances of the billers' payable and settled accounts. ``billswitch settle`` for
the day then moves nothing and writes the same report; for the open day it refuses.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import pytest
from defusedxml import ElementTree
from e2e_support import (
    AHEAD,
    CUT,
    Counted,
    Ledger,
    backend_url,
    call,
    read_report,
    report_paths,
    settled_day,
)

from iso.amounts import net_settlement
from switch.business_day import business_day
from switch.debt_signing import public_of, verify
from switch.ledger import accounts as acc
from switch.ledger import queries
from switch.payment_files import file_path, signature_path
from switch.signing_key import load_or_create_signing_key
from tests.client import payment, reconciliation, reversal
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

CUR = "944"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Day:
    switch: SwitchProcess
    ledger: Ledger
    day: date
    acquirers: dict[str, Counted] = field(default_factory=dict)
    billers: dict[str, Counted] = field(default_factory=dict)


Counts = tuple[dict[str, Counted], dict[str, Counted]]  # (by acquirer, by biller)

# (channel, terminal, acquirer) of each acquirer's traffic
POINTS = [("atm", "ATM00001", "100001"), ("pos", "POS00001", "100001"), ("host", "", "200002")]


def _traffic(proc: SwitchProcess, ledger: Ledger) -> Counts:
    """Payments and reversals from every point to both billers; declines and repeats
    that must count nowhere."""
    acquirers = {acquirer: Counted() for acquirer in ("100001", "200002")}
    billers = {biller: Counted() for biller in ("UTIL01", "MOB01")}
    for n, (channel, terminal, acquirer) in enumerate(POINTS):
        with proc.client(channel) as client:
            held = ledger.account(500_000)
            paid = []
            for biller, account, amount in (
                ("UTIL01", held, 1000 + n),
                ("UTIL01", held, 2500),
                ("MOB01", f"55500{n}", 700),
                ("MOB01", f"55501{n}", 4000 + 10 * n),
            ):
                request = payment(account, amount, biller, terminal=terminal, acquirer=acquirer)
                call(client, request)
                acquirers[acquirer].paid(amount)
                billers[biller].paid(amount)
                paid.append((biller, request))
            call(client, payment(held, 0, terminal=terminal, acquirer=acquirer), "13")
            call(client, payment("NOPE", 10, terminal=terminal, acquirer=acquirer), "14")
            for (biller, original), kept in ((paid[1], None), (paid[3], 1500)):
                call(client, reversal(original, kept=kept))
                back = int(original["4"]) - (kept or 0)
                acquirers[acquirer].reversed(back)
                billers[biller].reversed(back)
            call(client, reversal(paid[1][1]))  # again: moves nothing
            call(client, paid[0][1])  # a retransmission: nothing
    return acquirers, billers


@pytest.fixture(scope="module", params=BACKENDS)
def settled(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Day]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("settle")
    for url in backend_url(request.param, home):
        ledger = Ledger(url)
        try:
            traffic = settled_day(home, url, partial(_traffic, ledger=ledger))
            with traffic as (proc, day, (acquirers, billers)):
                yield Day(proc, ledger, day, acquirers, billers)
        finally:
            ledger.close()


def test_0510_has_the_totals_the_answers_gave(settled: Day) -> None:
    mmdd = settled.day.strftime("%m%d")
    with settled.switch.client("atm") as atm, settled.switch.client("host") as host:
        for client, terminal, acquirer in ((atm, "ATM00001", "100001"), (host, "", "200002")):
            t = settled.acquirers[acquirer]
            totals = {
                "15": mmdd,
                "76": f"{t.count:010d}",
                "77": f"{t.reversals:010d}",
                "88": f"{t.amount:016d}",
                "89": f"{t.reversed_amount:016d}",
                "97": net_settlement(t.amount - t.reversed_amount),
            }
            call(client, reconciliation(acquirer=acquirer, terminal=terminal, **totals))


def test_the_report_has_each_billers_totals(settled: Day) -> None:
    report = read_report(settled.switch, settled.day)
    assert report["business_day"] == settled.day.isoformat()
    lines = {(b["biller"], b["currency"]): b for b in report["billers"]}
    assert set(lines) == {(code, CUR) for code in settled.billers}
    for code, t in settled.billers.items():
        line = lines[(code, CUR)]
        assert (line["count"], line["reversals"]) == (t.count, t.reversals)
        assert line["amount"] == t.amount - t.reversed_amount
        assert line["fees"] == 0  # neither demo biller pays a fee
        assert line["net"] == line["amount"]
        assert line["bank_account"].startswith("AZ00DEMO")
    text = report_paths(settled.switch, settled.day)[0].read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["biller"], int(r["net"])) for r in rows] == [
        (b["biller"], b["net"]) for b in report["billers"]
    ]


def test_report_0510_and_ledger_agree(settled: Day) -> None:
    """The three ways: what the 0510s total over acquirers is what the report totals
    over billers, and what the ledger moved to the settled accounts."""
    report = read_report(settled.switch, settled.day)
    with settled.ledger.engine.connect() as conn:
        acquirers = [queries.acquirer_totals(conn, a, settled.day) for a in settled.acquirers]
        balances = queries.balances(conn)
    (total,) = report["totals"]
    assert total["count"] == sum(t.payments for t in acquirers)
    assert total["reversals"] == sum(t.reversals for t in acquirers)
    assert total["amount"] == sum(t.payment_amount - t.reversal_amount for t in acquirers)
    assert total["net"] == sum(t.net for t in acquirers)  # no fees: the acquirers' net
    for line in report["billers"]:
        assert balances[acc.biller_settled(line["biller"], CUR)] == -line["net"]
        assert balances[acc.biller_payable(line["biller"], CUR)] == 0  # all of it settled
    receivables = sum(v for k, v in balances.items() if k.startswith("ACQ:"))
    assert receivables == total["net"]


def _settle(proc: SwitchProcess, day: date) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = ["--home", str(proc.home), "--config", str(proc.home / "billswitch.toml")]
    return subprocess.run(
        [sys.executable, "-m", "switch.cli", "settle", "--business-day", day.isoformat(),
         *argv, "--db", proc.db_url],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_settle_by_hand_again_changes_nothing(settled: Day) -> None:
    paths = report_paths(settled.switch, settled.day)
    before = [p.read_bytes() for p in paths]
    journal = settled.ledger.count("journal")
    done = _settle(settled.switch, settled.day)
    assert done.returncode == 0, done.stderr
    assert "already settled, nothing moved" in done.stdout
    assert [p.read_bytes() for p in paths] == before
    assert settled.ledger.count("journal") == journal


def test_settle_refuses_the_open_day(settled: Day) -> None:
    today = business_day(datetime.now(UTC), CUT, AHEAD)
    refused = _settle(settled.switch, today)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"billswitch settle: business day {today} is open: it closes at the cut-over"
        f" (23:00 {AHEAD}); settle it after that"
    )
    assert "Traceback" not in refused.stderr
    assert not report_paths(settled.switch, today)[0].exists()


def test_the_close_of_day_also_writes_signed_payment_files(settled: Day) -> None:
    """After the report, the day's payment file of each offline biller (UTIL01 here),
    signed with the switch's key; its total is the day's amount the report gives."""
    path = file_path(settled.switch.home / "payments", "UTIL01", settled.day)
    deadline = time.monotonic() + 90
    while not signature_path(path).exists():
        assert time.monotonic() < deadline, "no payment file:\n" + settled.switch.log_text()[-3000:]
        time.sleep(0.1)
    key = public_of(load_or_create_signing_key(settled.switch.home))
    assert verify(key, signature_path(path).read_bytes(), path.read_bytes())
    lines = {b["biller"]: b for b in read_report(settled.switch, settled.day)["billers"]}
    root = ElementTree.fromstring(path.read_bytes())
    assert int(root.get("total")) == lines["UTIL01"]["amount"]
