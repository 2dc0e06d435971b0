"""Which steps each kind of message goes through: a table, not an if-chain.

A flow is chosen by base MTI and, for messages that carry one, the first two
digits of the processing code (DE 3): 31 inquiry, 50 payment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from switch.security import cards, mac
from switch.services import Services
from switch.steps import (
    checks,
    fees,
    inquiry,
    network,
    online,
    payers,
    payment,
    reconciliation,
    repeats,
    reversal,
)
from switch.transaction import Transaction

Step = Callable[[Transaction, Services], Awaitable[dict[str, str] | None]]


@dataclass(frozen=True)
class Flow:
    mandatory: tuple[str, ...]  # DE 41 is added for terminal channels
    steps: tuple[Step, ...]


# Who is asking and its MAC come first; for money messages then the stored answer of a
# repeat (switch/steps/repeats.py), before anything an operator or a terminal may change.
_ENTRY = (checks.identify, mac.check_mac, checks.admitted, checks.signed_on)
_MONEY_ENTRY = (
    checks.identify,
    mac.check_mac,
    repeats.answer_stored,
    checks.admitted,
    checks.signed_on,
)
# DE 48 with a payer code (PC, no BL) branches off to its own steps (switch/steps/payers.py).
_INQUIRY = Flow(
    ("3", "7", "11", "32", "48"),
    _ENTRY
    + (
        payers.when_payer_code(payers.payer_code, payers.inquire),
        checks.bill_data,
        checks.route,
        inquiry.inquire,
    ),
)
_REVERSAL = Flow(("4", "7", "11", "32", "90"), _MONEY_ENTRY + (reversal.reverse,))

FLOWS: dict[tuple[str, str | None], Flow] = {
    ("0800", None): Flow(
        ("7", "11", "32", "70"),
        (checks.identify, mac.check_mac, checks.admitted, network.network_management),
    ),
    ("0100", "31"): _INQUIRY,
    ("0200", "31"): _INQUIRY,
    ("0200", "50"): Flow(
        ("3", "4", "7", "11", "32", "48", "49"),
        _MONEY_ENTRY
        + (
            payers.when_payer_code(payers.payer_code, payers.pay),
            checks.bill_data,
            checks.route,
            checks.amount,
            online.reachable,  # an open circuit: 91 before the PIN's round trips
            fees.price,
            cards.verify_on_us_pin,
            online.pay_by_kind,
        ),
    ),
    ("0220", "50"): Flow(
        ("3", "4", "7", "11", "32", "48", "49"),
        _MONEY_ENTRY + (checks.bill_data, payment.advice_route, fees.price, online.advice_by_kind),
    ),
    ("0400", None): _REVERSAL,
    ("0420", None): _REVERSAL,
    ("0500", None): Flow(("7", "11", "32"), _ENTRY + (reconciliation.reconcile,)),
}

# MTIs whose flow depends on the processing code.
BY_PROCESSING_CODE = frozenset(mti for mti, code in FLOWS if code is not None)

# Account types allowed in DE 3 positions 3-4 (from-account).
ACCOUNT_TYPES = frozenset({"00", "10", "20", "30"})
