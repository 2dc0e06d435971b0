"""Settlement with fees agrees three ways (issue 12: "Reconciliation (0500) and settlement
agree", "fees appear in DE 28 and in the ledger"), on SQLite and PostgreSQL.

Before traffic, two fee rules are added with ``billswitch fees add``: UTIL01 (held)
charges the payer 15 + 1.25 % on top, MOB01 (outline) pays 2 % itself, at least 30.
The day of test_e2e_settlement.py (``settled_day``) then takes payments over ISO 8583
on TCP through two acquirers (ATM of 100001, the host link of 200002), one payment of
each biller reversed in full (its fee goes back) and one in part (its fee stays:
docs/host-interface-notes.md, "Amounts and fees"). Every fee below is written out,
not computed, so the rounding rule (half up) is checked too. Then, each exactly:

- DE 28 of every approved 0210: the payer's fee, ``D00000000`` for a biller's;
- the 0510 of each acquirer: DE 88/89 the bill amounts only, DE 97 amount less
  reversals plus the payer's fees it still owes (a 0500 whose DE 97 leaves them
  out gets 95 and the switch's totals);
- the settlement report: per biller count, reversals, amount, fees (the biller's
  own), net = amount - fees;
- the ledger: each biller's payable 0 and settled account -net, the fee income
  every fee kept, each acquirer's receivable its DE 97.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import partial

import pytest
from e2e_support import (
    Counted,
    Ledger,
    backend_url,
    call,
    read_report,
    report_paths,
    settled_day,
)

from iso.amounts import net_settlement
from switch.cli import main
from switch.ledger import accounts as acc
from switch.ledger import queries
from tests.client import inquiry, payment, reconciliation, reversal
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

CUR = "944"
UTIL, MOB = "UTIL01", "MOB01"
REFRESH = "reference_refresh = 0.3  # seconds: the rules added by the CLI are seen quickly"
WAIT = 60.0  # seconds: bound of the wait for the switch to price with the rules
RULES = (
    ("--biller", UTIL, "--fixed", "15", "--percent", "1.25"),  # paid by the payer
    ("--biller", MOB, "--percent", "2", "--min", "30", "--paid-by", "biller"),
)


@dataclass(frozen=True)
class Pay:
    """One payment of each acquirer's traffic: its fee under ``RULES`` (worked out by
    hand), and how it is reversed (``reverse``; ``kept``: DE 95, a partial reversal)."""

    biller: str
    amount: int
    fee: int
    reverse: bool = False
    kept: int | None = None

    @property
    def on_top(self) -> int:
        """The payer's fee (DE 28, owed by the acquirer)."""
        return self.fee if self.biller == UTIL else 0

    @property
    def from_biller(self) -> int:
        return self.fee if self.biller == MOB else 0

    @property
    def back(self) -> int:
        """What the reversal gives back of the amount."""
        return self.amount - (self.kept or 0) if self.reverse else 0

    @property
    def fee_back(self) -> bool:
        """Only a reversal in full gives the fee back."""
        return self.reverse and self.kept is None


PAYMENTS = (
    Pay(UTIL, 1000, 28),  # 15 + 12.5 -> 13 (half up)
    Pay(UTIL, 2500, 46, reverse=True),  # 15 + 31.25 -> 31; in full: the fee goes back
    Pay(UTIL, 3000, 53, reverse=True, kept=1200),  # 15 + 37.5 -> 38; in part: it stays
    Pay(MOB, 750, 30),  # 2 % is 15: the minimum
    Pay(MOB, 4000, 80, reverse=True),
    Pay(MOB, 5025, 101, reverse=True, kept=1500),  # 100.5 -> 101
)
# (channel, terminal, acquirer) of each acquirer's traffic
POINTS = [("atm", "ATM00001", "100001"), ("host", "", "200002")]


@dataclass
class Traffic:
    """What the day should total, by acquirer and by biller, and each approved
    payment's DE 28 as (expected, answered)."""

    acquirers: dict[str, Counted] = field(default_factory=dict)
    billers: dict[str, Counted] = field(default_factory=dict)
    de28: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Day:
    switch: SwitchProcess
    ledger: Ledger
    day: date
    traffic: Traffic


def _add_rules(proc: SwitchProcess, ledger: Ledger) -> None:
    """``RULES`` through the CLI; then the wait until the switch prices with them (the
    last one added shows in a UTIL01 inquiry's DE 28: the snapshot that has it has the
    other, read before it)."""
    for rule in reversed(RULES):
        assert main(["fees", "add", *rule, "--home", str(proc.home), "--db", proc.db_url]) == 0
    owing = ledger.account(1000)
    deadline = time.monotonic() + WAIT
    with proc.client("atm") as atm:
        while atm.call(inquiry(owing)).get("28") != "D00000028":
            assert time.monotonic() < deadline, "the switch never served the fee rules"
            time.sleep(0.1)


def _traffic(proc: SwitchProcess, ledger: Ledger) -> Traffic:
    """``PAYMENTS`` from each point, then their reversals; a decline, a repeat and a
    reversal made again, which must count nowhere."""
    _add_rules(proc, ledger)
    day = Traffic()
    for n, (channel, terminal, acquirer) in enumerate(POINTS):
        by_acquirer = day.acquirers.setdefault(acquirer, Counted())
        with proc.client(channel) as client:
            held = ledger.account(500_000)
            sent = []
            for i, pay in enumerate(PAYMENTS):
                account = held if pay.biller == UTIL else f"5559{n}{i}"
                request = payment(account, pay.amount, pay.biller, terminal=terminal,
                                  acquirer=acquirer)  # fmt: skip
                day.de28.append((f"D{pay.on_top:08d}", call(client, request).get("28", "")))
                by_acquirer.paid(pay.amount, pay.on_top)
                day.billers.setdefault(pay.biller, Counted()).paid(pay.amount, pay.from_biller)
                sent.append(request)
            declined = call(client, payment(held, 0, terminal=terminal, acquirer=acquirer), "13")
            assert "28" not in declined
            for pay, request in zip(PAYMENTS, sent, strict=True):
                if not pay.reverse:
                    continue
                call(client, reversal(request, kept=pay.kept))
                by_acquirer.reversed(pay.back, pay.on_top if pay.fee_back else 0)
                fee_back = pay.from_biller if pay.fee_back else 0
                day.billers[pay.biller].reversed(pay.back, fee_back)
            call(client, reversal(sent[1]))  # again: moves nothing, its fee not twice
            repeat = call(client, sent[0])  # a retransmission: the same DE 28, no new fee
            assert repeat["28"] == f"D{PAYMENTS[0].on_top:08d}"
    return day


@pytest.fixture(scope="module", params=BACKENDS)
def settled(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Day]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("settle_fees")
    for url in backend_url(request.param, home):
        ledger = Ledger(url)
        try:
            day = settled_day(home, url, partial(_traffic, ledger=ledger), REFRESH)
            with day as (proc, business_day, traffic):
                yield Day(proc, ledger, business_day, traffic)
        finally:
            ledger.close()


def test_each_approved_payment_shows_the_payers_fee_in_de28(settled: Day) -> None:
    expected = [f"D{pay.on_top:08d}" for pay in PAYMENTS] * len(POINTS)
    assert [want for want, _ in settled.traffic.de28] == expected
    assert [got for _, got in settled.traffic.de28] == expected


def _totals(t: Counted, mmdd: str, net: int) -> dict[str, str]:
    return {
        "15": mmdd,
        "76": f"{t.count:010d}",
        "77": f"{t.reversals:010d}",
        "88": f"{t.amount:016d}",
        "89": f"{t.reversed_amount:016d}",
        "97": net_settlement(net),
    }


def test_0510_counts_the_payers_fees_in_de97_only(settled: Day) -> None:
    """Each acquirer: 1000+2500+3000+750+4000+5025 paid, 2500+1800+4000+3525 reversed,
    fees 28+46+53 charged and 46 given back: DE 97 = 16275 - 11825 + 81."""
    mmdd = settled.day.strftime("%m%d")
    with settled.switch.client("atm") as atm, settled.switch.client("host") as host:
        for client, (_, terminal, acquirer) in zip((atm, host), POINTS, strict=True):
            t = settled.traffic.acquirers[acquirer]
            assert (t.amount, t.reversed_amount, t.fees) == (16275, 11825, 81)
            net = t.amount - t.reversed_amount + t.fees
            call(client, reconciliation(acquirer=acquirer, terminal=terminal,
                                        **_totals(t, mmdd, net)))  # fmt: skip
            without_fees = _totals(t, mmdd, net - t.fees)
            answer = call(client, reconciliation(acquirer=acquirer, terminal=terminal,
                                                 **without_fees), "95")  # fmt: skip
            assert answer["97"] == net_settlement(net)
            for de in ("76", "77", "88", "89"):
                assert int(answer[de]) == int(without_fees[de]), de


def test_the_report_has_each_billers_totals_and_fees(settled: Day) -> None:
    report = read_report(settled.switch, settled.day)
    lines = {(b["biller"], b["currency"]): b for b in report["billers"]}
    assert set(lines) == {(UTIL, CUR), (MOB, CUR)}
    expected = {  # per acquirer: UTIL01 6500 - 4300, no fee of its own; MOB01 9775 - 7525
        UTIL: (6, 4, 2 * 2200, 0),
        MOB: (6, 4, 2 * 2250, 2 * (30 + 101)),
    }
    for code, t in settled.traffic.billers.items():
        line = lines[(code, CUR)]
        counted = (t.count, t.reversals, t.amount - t.reversed_amount, t.fees)
        assert counted == expected[code]
        assert (line["count"], line["reversals"], line["amount"], line["fees"]) == counted
        assert line["net"] == line["amount"] - line["fees"]
    (total,) = report["totals"]
    assert (total["amount"], total["fees"], total["net"]) == (8900, 262, 8638)
    text = report_paths(settled.switch, settled.day)[0].read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["biller"], int(r["fees"]), int(r["net"])) for r in rows] == [
        (b["biller"], b["fees"], b["net"]) for b in report["billers"]
    ]


def test_ledger_report_and_0510_agree(settled: Day) -> None:
    """The three ways: the acquirers owe what their 0510 says (DE 97, payer's fees in),
    the billers' settled accounts hold the report's net, the fee income every fee kept
    (the payers' and the billers'); what the acquirers owe is the other two together."""
    report = read_report(settled.switch, settled.day)
    with settled.ledger.engine.connect() as conn:
        ledger_totals = {a: queries.acquirer_totals(conn, a, settled.day) for _, _, a in POINTS}
        balances = queries.balances(conn)
    for acquirer, t in settled.traffic.acquirers.items():
        net = t.amount - t.reversed_amount + t.fees
        assert ledger_totals[acquirer].net == net
        assert balances[acc.acquirer_receivable(acquirer, CUR)] == net
    for line in report["billers"]:
        assert balances[acc.biller_payable(line["biller"], CUR)] == 0  # all of it settled
        assert balances[acc.biller_settled(line["biller"], CUR)] == -line["net"]
    payers = sum(t.fees for t in settled.traffic.acquirers.values())
    billers = sum(t.fees for t in settled.traffic.billers.values())
    assert (payers, billers) == (2 * 81, 262)
    assert balances[acc.fee_income(CUR)] == -(payers + billers)
    (total,) = report["totals"]
    owed = sum(t.net for t in ledger_totals.values())
    assert owed == total["net"] + total["fees"] + payers == 9062
