"""At a real cut-over, two switch nodes on one database settle the day once (issue 12).

Both nodes are configured with a cut-over some seconds after their start, in a time
zone where that is mid-day (so the day boundary is the cut-over, not midnight).
They take payments, then both cut-over timers fire at the same instant: each rolls
the business day and runs the close-of-day job; the day's claim row lets one of them
settle it. Afterwards: one ``settlements`` row, done; one settlement journal row per
biller; one report, matching the payments; only one node says it settled the day.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from e2e_support import Ledger, Nodes, call, receipt, two_nodes
from sqlalchemy import select

from switch.ledger import schema as s
from tests.client import payment
from tests.conftest import BACKENDS

MARGIN = timedelta(seconds=30)  # from writing the configuration to the cut-over


def _zone_and_cutover(now: datetime) -> tuple[str, str]:
    """An ``Etc/GMT±N`` zone where ``now + MARGIN`` is between 03:00 and 21:00, and that
    moment as the cut-over (HH:MM:SS)."""
    for hours in range(-12, 15):
        local = now + MARGIN + timedelta(hours=hours)
        if 3 <= local.hour < 21:
            zone = f"Etc/GMT{-hours:+d}" if hours else "UTC"  # POSIX signs are reversed
            return zone, local.strftime("%H:%M:%S")
    raise AssertionError("no zone found")  # pragma: no cover: some hour always fits


@pytest.fixture(params=BACKENDS)
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Nodes, str, str]]:
    zone, cut = _zone_and_cutover(datetime.now(UTC))
    top = f'timezone = "{zone}"\ncutover = "{cut}"'
    with two_nodes(tmp_path, request.param, top, top) as started:
        yield started, zone, cut


def _wait(what: str, done, bound: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.2)


def test_two_nodes_settle_the_day_once_at_cutover(nodes: tuple[Nodes, str, str]) -> None:
    (a, b, ledger), zone, cut = nodes
    paid = {"UTIL01": 0, "MOB01": 0}
    ids = []
    account = ledger.account(100_000)
    with a.client("atm") as on_a, b.client("host") as on_b:
        for client, terminal, acquirer in ((on_a, "ATM00001", "100001"), (on_b, "", "200002")):
            for biller, acc, amount in (("UTIL01", account, 1200), ("MOB01", "5550001", 900)):
                request = payment(acc, amount, biller, terminal=terminal, acquirer=acquirer)
                ids.append(receipt(call(client, request)))
                paid[biller] += amount
    days = {ledger.payment(i).business_day for i in ids}
    assert len(days) == 1, f"payments crossed the cut-over {cut} {zone}: start too slow"
    (day,) = days
    report = a.home / "settlement" / f"{day}.json", b.home / "settlement" / f"{day}.json"
    _wait("the settlement at cut-over", lambda: any(p.exists() for p in report))
    _wait("the day done", lambda: _states(ledger) == [(day, "done")])
    (written,) = [p for p in report if p.exists()]  # one node wrote it
    lines = {x["biller"]: x for x in json.loads(written.read_text())["billers"]}
    assert {code: x["net"] for code, x in lines.items()} == paid
    assert {code: x["count"] for code, x in lines.items()} == {"UTIL01": 2, "MOB01": 2}
    assert _settlement_rows(ledger, day) == sorted(paid.values())
    said = [p.log_text().count("business day settled") for p in (a, b)]
    assert sorted(said) == [0, 1], said


def _states(ledger: Ledger) -> list[tuple[date, str]]:
    st = s.settlements.c
    with ledger.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(st.business_day, st.state))]  # type: ignore[misc]


def _settlement_rows(ledger: Ledger, day: date) -> list[int]:
    j = s.journal.c
    with ledger.engine.connect() as conn:
        query = select(j.amount).where(j.kind == "settlement", j.business_day == day)
        return sorted(conn.execute(query).scalars())
