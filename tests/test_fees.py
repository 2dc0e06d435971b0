"""Fee pricing (switch/ledger/fees.py) and amount rules (switch/ledger/amount_rules.py):
pure functions, no database. Rounding is half up on the percent part, in minor units."""

from __future__ import annotations

import pytest

from switch.fees_cli import FeeCommandError, parse_percent
from switch.ledger.amount_rules import arrival_violation, due_violation
from switch.ledger.fees import (
    BILLER,
    LARGEST_FEE,
    NO_FEE,
    PAYER,
    PRECEDENCE,
    Fee,
    FeeRule,
    FeeRules,
    percent_of,
)
from switch.ledger.reference import Biller


def rule(
    rule_id: int = 1,
    biller: str | None = None,
    channel: str | None = None,
    acquirer: str | None = None,
    **money: int | str | None,
) -> FeeRule:
    return FeeRule(rule_id, biller, channel, acquirer, **money)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "basis_points", "expected"),
    [
        (0, 100, 0),
        (49, 100, 0),  # 0.49 -> 0
        (50, 100, 1),  # 0.5 -> 1: half goes up
        (149, 100, 1),  # 1.49 -> 1
        (150, 100, 2),  # 1.5 -> 2
        (151, 100, 2),
        (2500, 100, 25),
        (1, 5000, 1),  # 0.5 -> 1
        (3, 3333, 1),  # 0.9999 -> 1
        (10_000, 1, 1),  # one basis point of 10000
        (5_000, 1, 1),  # 0.5 -> 1
        (4_999, 1, 0),  # 0.4999 -> 0
        (999_999_999_999, 10_000, 999_999_999_999),  # 100 % of the largest DE 4
        (123_456_789, 25, 308_642),  # 308641.97 -> 308642
    ],
)
def test_the_percent_part_is_rounded_half_up(amount: int, basis_points: int, expected: int) -> None:
    assert percent_of(amount, basis_points) == expected


def test_fixed_plus_percent_held_between_min_and_max() -> None:
    r = rule(fixed=20, percent_bp=100, min_fee=50, max_fee=300)
    assert r.charge(1_000) == Fee(50, PAYER)  # 20 + 10 = 30: the minimum
    assert r.charge(10_000) == Fee(120, PAYER)  # 20 + 100
    assert r.charge(100_000) == Fee(300, PAYER)  # 20 + 1000: the maximum
    assert r.charge(3_000) == Fee(50, PAYER)  # 20 + 30 = 50: exactly the minimum
    assert r.charge(28_000) == Fee(300, PAYER)  # 20 + 280 = 300: exactly the maximum


def test_the_demo_rule_of_tel01() -> None:
    """1 % with a minimum of 50, paid by the payer."""
    r = rule(biller="TEL01", percent_bp=100, min_fee=50)
    assert [r.charge(a).amount for a in (1, 2500, 4999, 5000, 5049, 5050, 10_000)] == [
        50, 50, 50, 50, 50, 51, 100,
    ]  # fmt: skip


def test_a_biller_never_pays_more_than_the_payment() -> None:
    r = rule(fixed=100, payer=BILLER)
    assert r.charge(40) == Fee(40, BILLER)
    assert r.charge(400) == Fee(100, BILLER)


def test_no_fee_is_larger_than_de28_can_say() -> None:
    assert rule(percent_bp=10_000).charge(10**12 - 1) == Fee(LARGEST_FEE, PAYER)


def test_fee_says_what_the_payer_pays_on_top_and_what_the_biller_loses() -> None:
    assert (Fee(70, PAYER).on_top, Fee(70, PAYER).from_biller) == (70, 0)
    assert (Fee(70, BILLER).on_top, Fee(70, BILLER).from_biller) == (0, 70)
    assert NO_FEE == Fee(0, PAYER) and NO_FEE.on_top == 0


def test_the_most_specific_rule_wins() -> None:
    rules = FeeRules(
        [
            rule(1, fixed=1),
            rule(2, channel="POS", fixed=2),
            rule(3, acquirer="100001", fixed=3),
            rule(4, acquirer="100001", channel="POS", fixed=4),
            rule(5, biller="UTIL01", fixed=5),
            rule(6, biller="UTIL01", channel="POS", fixed=6),
            rule(7, biller="UTIL01", acquirer="100001", fixed=7),
            rule(8, biller="UTIL01", acquirer="100001", channel="POS", fixed=8),
        ]
    )

    def fee(biller: str, channel: str, acquirer: str) -> int:
        return rules.price(biller, channel, acquirer, 1000).amount

    assert fee("UTIL01", "POS", "100001") == 8
    assert fee("UTIL01", "ATM", "100001") == 7  # biller + acquirer beats biller + channel
    assert fee("UTIL01", "POS", "200002") == 6
    assert fee("UTIL01", "ATM", "200002") == 5  # the biller beats acquirer and channel
    assert fee("MOB01", "POS", "100001") == 4
    assert fee("MOB01", "ATM", "100001") == 3  # the acquirer beats the channel
    assert fee("MOB01", "POS", "200002") == 2
    assert fee("MOB01", "HOST", "200002") == 1


def test_precedence_names_every_scope_once_most_specific_first() -> None:
    assert len(set(PRECEDENCE)) == 8
    assert PRECEDENCE[0] == (True, True, True) and PRECEDENCE[-1] == (False, False, False)


def test_without_a_matching_rule_there_is_no_fee() -> None:
    rules = FeeRules([rule(1, biller="TEL01", percent_bp=100)])
    assert rules.price("UTIL01", "ATM", "100001", 10_000) == NO_FEE
    assert FeeRules().price("TEL01", "ATM", "100001", 10_000) == NO_FEE


def test_a_zero_rule_takes_the_fee_away_where_it_is_more_specific() -> None:
    rules = FeeRules([rule(1, fixed=30), rule(2, biller="MOB01", channel="HOST")])
    assert rules.price("MOB01", "HOST", "200002", 500) == Fee(0, PAYER)
    assert rules.price("MOB01", "ATM", "100001", 500) == Fee(30, PAYER)


def test_of_two_rules_of_one_scope_the_older_counts() -> None:
    rules = FeeRules([rule(9, biller="X", fixed=9), rule(3, biller="X", fixed=3)])
    assert rules.price("X", "ATM", "1", 100).amount == 3


@pytest.mark.parametrize(
    ("text", "basis_points"),
    [("0", 0), ("1", 100), ("0.25", 25), ("1.5", 150), ("0.01", 1), ("100", 10_000), ("2%", 200)],
)
def test_percent_as_typed(text: str, basis_points: int) -> None:
    assert parse_percent(text) == basis_points


@pytest.mark.parametrize("text", ["0.001", "-1", "abc", "1e2", "", "101", "NaN", "1,5"])
def test_a_percent_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(FeeCommandError, match="--percent"):
        parse_percent(text)


def _biller(**rules: object) -> Biller:
    settings = {
        "code": "B1",
        "name": "B",
        "kind": "held",
        "currency": "944",
        "min_amount": 100,
        "max_amount": 5000,
        "partial_allowed": True,
        "overpay_allowed": False,
        "active": True,
    }
    return Biller(**{**settings, **rules})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "why"),
    [
        (0, "944", "zero amount"),
        (500, "840", "currency differs from the biller's"),
        (99, "944", "below the biller's minimum"),
        (5001, "944", "above the biller's maximum"),
        (100, "944", None),
        (5000, "944", None),
    ],
)
def test_amount_rules_on_arrival(amount: int, currency: str, why: str | None) -> None:
    assert arrival_violation(_biller(), amount, currency) == why


def test_no_maximum_is_no_limit() -> None:
    assert arrival_violation(_biller(max_amount=None), 10**11, "944") is None


@pytest.mark.parametrize(
    ("partial", "overpay", "amount", "broken"),
    [
        (False, False, 1000, False),  # exact only: the amount due
        (False, False, 999, True),
        (False, False, 1001, True),
        (True, False, 999, False),  # partial
        (True, False, 1001, True),
        (False, True, 1001, False),  # top-up
        (False, True, 999, True),
        (True, True, 1, False),
        (True, True, 10**9, False),
    ],
)
def test_amount_rules_against_the_amount_due(
    partial: bool, overpay: bool, amount: int, broken: bool
) -> None:
    biller = _biller(partial_allowed=partial, overpay_allowed=overpay)
    assert (due_violation(biller, amount, 1000) is not None) == broken
