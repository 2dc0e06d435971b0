"""A day reconciled by a 0500 never changes afterwards, on any node (issue 8 item 9a).

Two nodes share the database with clocks a day apart (time zones UTC+14 and UTC-12
stand in for a node whose clock or cut-over lags): node A's business day is later than
node B's. B pays into its day; A's 0500 for that day, a past day for A, closes it and
agrees. B then pays again, its own clock still on the closed day: the payment belongs
to the day open at its commit, so A's second 0500 for the closed day still agrees.
Before, B's second payment landed in the reconciled day (0510 with 95).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time

import pytest
from e2e_support import Nodes, call, receipt, two_nodes

from iso.amounts import net_settlement
from switch.business_day import business_day
from tests.client import payment, reconciliation
from tests.conftest import BACKENDS

AHEAD, BEHIND = "Etc/GMT-14", "Etc/GMT+12"  # POSIX signs: UTC+14 and UTC-12


@pytest.fixture(scope="module", params=BACKENDS)
def nodes(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Nodes]:  # type: ignore[no-untyped-def]
    with two_nodes(
        tmp_path_factory.mktemp("days"),
        request.param,
        f'timezone = "{AHEAD}"',
        f'timezone = "{BEHIND}"',
    ) as nodes:
        yield nodes


def _totals(count: int, amount: int, day: date) -> dict[str, str]:
    return {
        "15": day.strftime("%m%d"),
        "76": f"{count:010d}",
        "88": f"{amount:016d}",
        "97": net_settlement(amount),
    }


def test_a_reconciled_day_never_changes(nodes: Nodes) -> None:
    a, b, ledger = nodes
    now = datetime.now(UTC)
    day_b = business_day(now, time(23, 0), BEHIND)
    day_a = business_day(now, time(23, 0), AHEAD)
    assert day_b < day_a
    account = ledger.account(1_000_000)
    with a.client("atm") as on_a, b.client("atm") as on_b:
        first = receipt(call(on_b, payment(account, 1000)))
        assert ledger.payment(first).business_day == day_b
        call(on_a, reconciliation(**_totals(1, 1000, day_b)), "00")  # closes B's day
        second = receipt(call(on_b, payment(account, 2000)))
        call(on_a, reconciliation(**_totals(1, 1000, day_b)), "00")  # still those totals
    assert ledger.payment(second).business_day == day_a
    assert ledger.unbalanced() == []
