"""What an online biller is told a payment's time is (switch/steps/online.py): DE 7 with
its year, the same in every message of the transaction; a DE 7 that is no time is 30."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switch.errors import FormatError
from switch.steps.online import transmitted_at
from switch.transaction import Origin, Transaction


def _at(de7: str, received: datetime) -> datetime:
    return transmitted_at(Transaction({"t": "0200", "7": de7}, Origin("atm", "ATM"), received))


def test_de7_is_the_payment_time_whenever_the_message_arrives() -> None:
    first = datetime(2026, 11, 22, 10, 15, 3, 250_000, tzinfo=UTC)
    later = datetime(2026, 11, 22, 10, 16, 41, tzinfo=UTC)  # its advice, a minute on
    assert _at("1122101502", first) == _at("1122101502", later)
    assert _at("1122101502", first) == datetime(2026, 11, 22, 10, 15, 2, tzinfo=UTC)


def test_a_december_de7_seen_in_january_is_last_year() -> None:
    received = datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert _at("1231235959", received) == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_a_january_de7_seen_in_december_is_next_year() -> None:
    """A terminal whose clock is ahead sends January's DE 7 before the new year here."""
    received = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    assert _at("0101000001", received) == datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "de7", ["1340101500", "11221015xx", "0230101500", "112210150", "+122101500"]
)
def test_a_de7_that_is_no_time_is_a_format_error(de7: str) -> None:
    with pytest.raises(FormatError) as raised:
        _at(de7, datetime(2026, 11, 22, tzinfo=UTC))
    assert raised.value.code == "30" and raised.value.field == "7"
