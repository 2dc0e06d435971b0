"""Acquirer reconciliation (0500/0510): the acquirer's day totals against the ledger's.

This module's switch sees only the traffic below, so the totals an acquirer
would keep can be computed from the responses it got: approved 0210/0230
count as debits (DE 76/88), reversals that moved money as debit reversals
(DE 77/89), DE 97 is the net the acquirer owes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from e2e_support import Ledger, call

from iso.amounts import net_settlement, parse_signed
from tests.client import network, payment, reconciliation, reversal
from tests.switch_process import SwitchProcess


@dataclass
class AcquirerTotals:
    payments: int = 0
    payment_amount: int = 0
    reversals: int = 0
    reversal_amount: int = 0

    def fields(self) -> dict[str, str]:
        return {
            "74": f"{0:010d}",
            "75": f"{0:010d}",
            "76": f"{self.payments:010d}",
            "77": f"{self.reversals:010d}",
            "86": f"{0:016d}",
            "87": f"{0:016d}",
            "88": f"{self.payment_amount:016d}",
            "89": f"{self.reversal_amount:016d}",
            "97": net_settlement(self.payment_amount - self.reversal_amount),
        }


@pytest.fixture(scope="module")
def day(switch: SwitchProcess, ledger: Ledger) -> dict[str, AcquirerTotals]:
    """Traffic of both acquirers for today; their totals as computed from the responses."""
    totals = {"100001": AcquirerTotals(), "200002": AcquirerTotals()}
    with switch.client("atm") as atm, switch.client("host") as host:
        call(host, network("001", terminal="", acquirer="200002"))
        for client, terminal, acquirer in ((atm, "ATM00001", "100001"), (host, "", "200002")):
            t = totals[acquirer]
            account = ledger.account(1_000_000)
            paid = []
            for amount, mti in ((1000, "0200"), (2500, "0200"), (700, "0220"), (4000, "0200")):
                request = payment(account, amount, mti=mti, terminal=terminal, acquirer=acquirer)
                call(client, request)
                t.payments += 1
                t.payment_amount += amount
                paid.append(request)
            declined = payment(account, 0, terminal=terminal, acquirer=acquirer)
            call(client, declined, "13")  # declined: not in anyone's totals
            call(client, payment("NOPE", 10, terminal=terminal, acquirer=acquirer), "14")
            call(client, reversal(paid[1]))  # full: 2500 back
            t.reversals += 1
            t.reversal_amount += 2500
            call(client, reversal(paid[3], kept=1500))  # partial: 2500 back
            t.reversals += 1
            t.reversal_amount += 2500
            call(client, reversal(paid[1]))  # again: moves nothing
            never_sent = payment(account, 5, terminal=terminal, acquirer=acquirer)
            call(client, reversal(never_sent, mti="0420"))  # unknown original: nothing
            call(client, paid[0])  # retransmission: nothing
    return totals


def test_matching_totals_are_approved(
    switch: SwitchProcess, day: dict[str, AcquirerTotals]
) -> None:
    with switch.client("atm") as atm:
        fields = day["100001"].fields()
        request = reconciliation(**fields)
        response = call(atm, request)
        assert response["t"] == "0510"
        for de, value in fields.items():
            assert response[de] == value, de
    with switch.client("host") as host:
        call(host, reconciliation(acquirer="200002", terminal="", **day["200002"].fields()))


def test_matching_totals_without_net_amount(
    switch: SwitchProcess, day: dict[str, AcquirerTotals]
) -> None:
    fields = day["100001"].fields()
    del fields["97"]
    with switch.client("atm") as atm:
        call(atm, reconciliation(**fields))


@pytest.mark.parametrize(
    "change",
    [
        {"76": f"{5:010d}"},  # one payment too many
        {"88": f"{1:016d}"},
        {"77": f"{0:010d}"},
        {"89": f"{0:016d}"},
        {"97": net_settlement(1)},
        {"97": net_settlement(-3200)},  # the right amount with the wrong sign
        {"86": f"{100:016d}"},  # credits this network never has
    ],
    ids=["count", "amount", "reversal-count", "reversal-amount", "net", "net-sign", "credits"],
)
def test_differing_totals_get_95_with_the_switch_totals(
    switch: SwitchProcess, day: dict[str, AcquirerTotals], change: dict[str, str]
) -> None:
    ours = day["100001"].fields()
    request = reconciliation(**dict(ours, **change))
    with switch.client("atm") as atm:
        response = call(atm, request, "95")
    assert response["t"] == "0510"
    for de, value in ours.items():
        assert response[de] == value, de
    assert parse_signed(response["97"]) == 8200 - 5000


def test_missing_or_zero_totals_get_95_with_the_ledger_totals(
    switch: SwitchProcess, day: dict[str, AcquirerTotals]
) -> None:
    with switch.client("host") as host:  # no totals at all: zeros
        response = call(host, reconciliation(acquirer="200002", terminal=""), "95")
        assert response["76"] == day["200002"].fields()["76"]
        assert response["88"] == day["200002"].fields()["88"]
    with switch.client("atm") as atm:
        response = call(atm, reconciliation(**AcquirerTotals().fields()), "95")
        assert int(response["76"]) == day["100001"].payments


def test_reconciliation_needs_sign_on(
    switch: SwitchProcess, day: dict[str, AcquirerTotals]
) -> None:
    with switch.client("atm") as atm:
        call(atm, reconciliation(terminal="ATM00004", **day["100001"].fields()), "03")


def test_reconciliation_does_not_change_the_ledger(
    switch: SwitchProcess, ledger: Ledger, day: dict[str, AcquirerTotals]
) -> None:
    journal = ledger.count("journal")
    with switch.client("atm") as atm:
        call(atm, reconciliation(**day["100001"].fields()))
        call(atm, reconciliation(), "95")
    assert ledger.count("journal") == journal


def test_reconciliation_of_a_named_business_day(
    switch: SwitchProcess, ledger: Ledger, day: dict[str, AcquirerTotals]
) -> None:
    (traffic_day,) = {p.business_day for p in ledger.payments()}
    quiet_day = traffic_day - timedelta(days=1)
    with switch.client("atm") as atm:
        totals = day["100001"].fields()
        call(atm, reconciliation(**totals, **{"15": traffic_day.strftime("%m%d")}))
        call(atm, reconciliation(**AcquirerTotals().fields(), **{"15": quiet_day.strftime("%m%d")}))
        response = call(atm, reconciliation(**totals, **{"15": quiet_day.strftime("%m%d")}), "95")
        assert response["15"] == quiet_day.strftime("%m%d")
        assert int(response["76"]) == 0
        call(atm, reconciliation(**totals, **{"15": "1341"}), "30")
