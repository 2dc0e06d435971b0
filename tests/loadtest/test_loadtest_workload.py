"""Message builders: what goes on the wire survives the iso codec unchanged."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from iso.bill_data import build_bill_data, parse_bill_data
from iso.dialect import decode_message, encode_message
from loadtest import workload
from loadtest.budget import DebtBook, ReversalPool
from loadtest.config import parse_accounts, parse_mix
from loadtest.identity import Identity, RrnCounter, StanCounter, identities

ATM = identities("atm")[0]
POS = identities("pos")[2]
HOST = identities("host")[0]
WHEN = workload.stamp_at(
    datetime(2026, 11, 21, 9, 8, 7, tzinfo=UTC), datetime(2026, 11, 21, 13, 8, 7)
)


def header(identity: Identity, stan: str = "000123", rrn: str = "263250000001") -> workload.Header:
    return workload.Header(identity, stan, WHEN, rrn)


def round_trip(fields: dict[str, str]) -> dict[str, str]:
    decoded = decode_message(encode_message(fields))
    return {k: v for k, v in decoded.items() if k not in ("p", "1")}


def test_identities_match_the_demo_data() -> None:
    assert [i.terminal for i in identities("atm")] == [f"ATM0000{n}" for n in range(1, 6)]
    assert POS.merchant == "AGENT0000000001" and POS.acquirer == "100001"
    assert HOST.terminal is None and HOST.acquirer == "200002" and HOST.ledger_terminal == ""


def test_stamp_formats() -> None:
    assert (WHEN.transmitted, WHEN.local_time, WHEN.local_date) == ("1121090807", "130807", "1121")


def test_sign_on_round_trip() -> None:
    fields = workload.network(ATM, "000001", WHEN)
    assert round_trip(fields) == fields
    assert fields["70"] == "001" and fields["41"] == "ATM00001" and fields["32"] == "100001"
    assert "41" not in workload.network(HOST, "000001", WHEN)


def test_inquiry_round_trip() -> None:
    fields = workload.inquiry(header(POS), "1000001")
    assert round_trip(fields) == fields
    assert fields["3"] == "310000" and fields["42"] == "AGENT0000000001"
    assert parse_bill_data(fields["48"]) == {"BL": "UTIL01", "AC": "1000001"}


def test_payment_round_trip() -> None:
    fields = workload.payment(header(ATM), "1000002", 57)
    assert round_trip(fields) == fields
    assert (fields["t"], fields["3"], fields["4"], fields["49"]) == (
        "0200",
        "500000",
        "000000000057",
        "944",
    )
    assert fields["37"] == "263250000001" and fields["18"] == "6011"


def test_reversal_points_at_its_original() -> None:
    original = workload.Original(header(HOST, "000777", "263250000009"), "1000002", 42, 9)
    fields = workload.reversal(header(HOST, "000778", "263250000010"), original)
    assert round_trip(fields) == fields
    assert fields["t"] == "0400" and fields["11"] == "000778" and fields["4"] == "000000000042"
    assert fields["90"] == "0200" + "000777" + "1121090807" + "00000200002" + "0" * 11
    assert fields["37"] == "263250000009"


@pytest.mark.parametrize("identity", [ATM, HOST])
def test_match_key_pairs_request_and_response(identity: Identity) -> None:
    request = workload.payment(header(identity), "1000001", 1)
    response = round_trip(request | {"t": "0210", "39": "00"})
    assert workload.match_key(response) == workload.match_key(request)
    other = round_trip(request | {"t": "0210", "11": "000124"})
    assert workload.match_key(other) != workload.match_key(request)


def test_response_readers() -> None:
    fields = {"39": "00", "48": build_bill_data({"DU": "000000012345", "RN": "PAY-000317"})}
    assert workload.amount_due(fields) == 12345
    assert workload.receipt_number(fields) == 317
    assert workload.receipt_number({"48": "RN0003A1B"}) is None
    assert workload.amount_due({"48": "garbage"}) is None
    assert workload.response_code({}) == "--"


def test_stan_wraps_and_skips_zero() -> None:
    counter = StanCounter(999998)
    assert [counter.next() for _ in range(3)] == ["999998", "999999", "000001"]


def test_rrn_is_twelve_characters_and_unique() -> None:
    counter = RrnCounter(datetime(2026, 11, 21, tzinfo=UTC), 9_999_999)
    rrns = [counter.next() for _ in range(3)]
    assert rrns == ["263259999999", "263250000000", "263250000001"]


def test_parse_mix_and_accounts() -> None:
    assert parse_mix("payment=1") == {"inquiry": 0, "payment": 1, "reversal": 0}
    with pytest.raises(ValueError):
        parse_mix("refund=5")
    assert parse_accounts("1000001-1000003,ABC") == ["1000001", "1000002", "1000003", "ABC"]


def test_debt_book_never_overpays_and_refills() -> None:
    book = DebtBook({"A": 150, "B": 0}, max_amount=100, rng=random.Random(1))
    taken = []
    while (reserved := book.reserve()) is not None:
        taken.append(reserved)
    assert {acc for acc, _ in taken} == {"A"} and sum(a for _, a in taken) == 150
    book.release("A", 7)
    assert book.reserve() is not None


def test_reversal_pool_is_per_terminal_and_single_use() -> None:
    pool = ReversalPool()
    pool.add(workload.Original(header(ATM), "1000001", 5, 1))
    assert pool.take(identities("atm")[1]) is None
    assert pool.take(ATM) is not None and pool.take(ATM) is None
