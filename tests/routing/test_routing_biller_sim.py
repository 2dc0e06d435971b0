"""The reference biller server's API (billers.md "Online biller API") over real HTTP:
each endpoint's answers and refusals, idempotency, and signatures both ways."""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from loadtest.biller_process import BillerSimProcess
from routing import signing
from routing.biller_sim.catalogue import PWR01, TEL01
from tests.routing.biller_sim_support import call, payment


def test_fetch_answers_the_bill_signed_with_the_billers_secret(sim: BillerSimProcess) -> None:
    answer = call(sim.port, "TEL01", "POST", "/bills/fetch", {"account": "5550001"})
    assert answer.status == 200
    assert answer.json() == {
        "account": "5550001",
        "name": "KAPLAN M.",
        "amount_due": 8800,
        "currency": "944",
        "period": "202611",
        "invoice": "T5550001-202611",
        "due_date": "2026-12-15",
    }
    assert answer.signed_by(TEL01.secret)
    assert not answer.signed_by(PWR01.secret)


def test_fetch_refuses_unknown_and_closed_accounts(sim: BillerSimProcess) -> None:
    unknown = call(sim.port, "TEL01", "POST", "/bills/fetch", {"account": "5559999"})
    assert (unknown.status, unknown.json()["error"]) == (404, "unknown_account")
    assert unknown.signed_by(TEL01.secret)
    closed = call(sim.port, "TEL01", "POST", "/bills/fetch", {"account": "5550100"})
    assert (closed.status, closed.json()["error"]) == (422, "account_closed")


def test_prepaid_biller_knows_every_account(sim: BillerSimProcess) -> None:
    answer = call(sim.port, "PWR01", "POST", "/bills/fetch", {"account": "04123456789"})
    assert answer.status == 200
    assert answer.json()["amount_due"] == 0 and answer.json()["currency"] == "944"
    assert answer.signed_by(PWR01.secret)


def test_payment_is_accepted_with_a_vat_receipt_and_lowers_the_amount_due(
    sim: BillerSimProcess,
) -> None:
    before = sim.account("TEL01", "5550003")["amount_due"]
    answer = call(sim.port, "TEL01", "POST", "/payments", payment("api-pay-1", "5550003", 1000))
    assert answer.status == 200 and answer.signed_by(TEL01.secret)
    accepted = answer.json()
    assert accepted["status"] == "accepted"
    assert accepted["biller_ref"].startswith("TEL01-")
    assert accepted["receipt"].startswith("VAT")
    assert sim.account("TEL01", "5550003")["amount_due"] == before - 1000
    status = call(sim.port, "TEL01", "GET", "/payments/api-pay-1")
    assert status.status == 200 and status.signed_by(TEL01.secret)
    assert status.json() == {
        "payment_id": "api-pay-1",
        "status": "accepted",
        "account": "5550003",
        "amount": 1000,
        "biller_ref": accepted["biller_ref"],
        "receipt": accepted["receipt"],
    }
    held = {p["payment_id"]: p for p in sim.payments("TEL01")}
    assert held["api-pay-1"]["status"] == "accepted" and held["api-pay-1"]["amount"] == 1000


def test_same_payment_id_answers_the_same_and_other_content_conflicts(
    sim: BillerSimProcess,
) -> None:
    body = payment("api-idem-1", "5550004", 500)
    first = call(sim.port, "TEL01", "POST", "/payments", body)
    again = call(sim.port, "TEL01", "POST", "/payments", body)
    assert first.status == again.status == 200
    assert first.json() == again.json()
    assert sim.account("TEL01", "5550004")["amount_due"] == 2000  # lowered once
    other = call(sim.port, "TEL01", "POST", "/payments", payment("api-idem-1", "5550004", 501))
    assert (other.status, other.json()["error"]) == (409, "conflict")
    assert other.signed_by(TEL01.secret)
    assert [p["amount"] for p in sim.payments("TEL01") if p["payment_id"] == "api-idem-1"] == [500]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (payment("api-rule-1", "5550005", 2501), 422, "amount_not_accepted"),  # over the due
        (payment("api-rule-2", "5550060", 1), 422, "amount_not_accepted"),  # nothing due
        (payment("api-rule-3", "5550005", 0), 422, "amount_not_accepted"),
        (payment("api-rule-4", "5550005", 100, currency="840"), 422, "amount_not_accepted"),
        (payment("api-rule-5", "5550100", 100), 422, "account_closed"),
        (payment("api-rule-6", "5559999", 100), 404, "unknown_account"),
    ],
)
def test_payments_the_billers_rules_refuse_move_nothing(
    sim: BillerSimProcess, body: dict, status: int, error: str
) -> None:
    answer = call(sim.port, "TEL01", "POST", "/payments", body)
    assert (answer.status, answer.json()["error"]) == (status, error)
    assert answer.json()["message"]
    assert answer.signed_by(TEL01.secret)
    assert body["payment_id"] not in {p["payment_id"] for p in sim.payments("TEL01")}


def test_prepaid_payment_carries_a_20_digit_token_within_its_limits(sim: BillerSimProcess) -> None:
    low = call(sim.port, "PWR01", "POST", "/payments", payment("api-pwr-1", "7001", 99))
    high = call(sim.port, "PWR01", "POST", "/payments", payment("api-pwr-2", "7001", 1_000_001))
    assert low.status == high.status == 422
    ok = call(sim.port, "PWR01", "POST", "/payments", payment("api-pwr-3", "7001", 1_000_000))
    token = ok.json()["token"]
    assert ok.status == 200 and len(token) == 20 and token.isdigit()
    assert "receipt" not in ok.json()
    again = call(sim.port, "PWR01", "POST", "/payments", payment("api-pwr-3", "7001", 1_000_000))
    assert again.json()["token"] == token
    assert call(sim.port, "PWR01", "GET", "/payments/api-pwr-3").json()["token"] == token


def test_reversal_restores_the_amount_due_once(sim: BillerSimProcess) -> None:
    call(sim.port, "TEL01", "POST", "/payments", payment("api-rev-1", "5550006", 700))
    assert sim.account("TEL01", "5550006")["amount_due"] == 1800
    for _ in range(2):  # idempotent
        answer = call(sim.port, "TEL01", "POST", "/payments/api-rev-1/reversal")
        assert (answer.status, answer.json()) == (200, {"status": "reversed"})
        assert answer.signed_by(TEL01.secret)
    assert sim.account("TEL01", "5550006")["amount_due"] == 2500
    status = call(sim.port, "TEL01", "GET", "/payments/api-rev-1").json()
    assert status["status"] == "reversed"
    repeat = call(sim.port, "TEL01", "POST", "/payments", payment("api-rev-1", "5550006", 700))
    assert repeat.status == 200 and repeat.json()["status"] == "reversed"  # not taken again
    assert sim.account("TEL01", "5550006")["amount_due"] == 2500


def test_reversal_and_status_of_a_payment_never_accepted_are_404(sim: BillerSimProcess) -> None:
    reversal = call(sim.port, "TEL01", "POST", "/payments/api-never/reversal", {})
    assert (reversal.status, reversal.json()["error"]) == (404, "unknown_payment")
    status = call(sim.port, "TEL01", "GET", "/payments/api-never")
    assert (status.status, status.json()["error"]) == (404, "unknown_payment")
    assert status.signed_by(TEL01.secret)


@pytest.mark.parametrize(
    ("pid", "how"),
    list(
        enumerate(
            (
                {"secret": b"wrong-secret"},
                {"secret": PWR01.secret},  # another biller's
                {"age": timedelta(minutes=6)},  # stale
                {"age": -timedelta(minutes=6)},  # from the future
                {"signed": False},
            )
        )
    ),
)
def test_bad_or_stale_signature_is_401_and_moves_nothing(
    sim: BillerSimProcess, pid: int, how: dict
) -> None:
    body = payment(f"api-sig-{pid}", "5550002", 1)
    answer = call(sim.port, "TEL01", "POST", "/payments", body, **how)
    assert (answer.status, answer.json()["error"]) == (401, "bad_signature")
    assert answer.signed_by(TEL01.secret)
    assert body["payment_id"] not in {p["payment_id"] for p in sim.payments("TEL01")}


def test_a_signature_of_other_bytes_is_refused(sim: BillerSimProcess) -> None:
    body = b'{"account": "5550001"}'
    stamp = signing.timestamp(datetime.now(UTC))
    forged = signing.sign(TEL01.secret, stamp, b'{"account": "5550002"}')
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=30)
    headers = {"X-Timestamp": stamp, "X-Signature": forged}
    connection.request("POST", "/TEL01/bills/fetch", body=body, headers=headers)
    assert connection.getresponse().status == 401
    connection.close()


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
        ({"account": "5550001"}, "payment_id is missing"),
        (payment("api-bad-1", amount="100"), "amount must be an integer"),
        (payment("api-bad-2", amount=True), "amount must be an integer"),
        (payment("api-bad-3", amount=1.5), "amount must be an integer"),
        (payment("api-bad-4", account=5550002), "account must be a non-empty string"),
        (payment("api/bad", amount=1), "payment_id must be"),
        (payment("api-bad-5", currency="EUR"), "currency has the wrong form"),
        (payment("api-bad-6", paid_at="yesterday"), "paid_at is not an RFC 3339 time"),
        (payment("api-bad-7", invoice=7), "invoice must be a string"),
    ],
)
def test_bad_payment_bodies_are_400_with_a_reason(
    sim: BillerSimProcess, body: object, names: str
) -> None:
    answer = call(sim.port, "TEL01", "POST", "/payments", body)
    assert answer.status == 400
    assert answer.json()["error"] == "bad_request"
    assert names in answer.json()["message"]
    assert b"Traceback" not in answer.body
    assert answer.signed_by(TEL01.secret)


def test_bad_fetch_bodies_are_400(sim: BillerSimProcess) -> None:
    for body in (b"{", {"account": ""}, {"account": ["5550001"]}, {"period": "202611"}):
        answer = call(sim.port, "TEL01", "POST", "/bills/fetch", body)
        assert (answer.status, answer.json()["error"]) == (400, "bad_request")


def test_unknown_biller_path_and_method(sim: BillerSimProcess) -> None:
    assert call(sim.port, "NOPE1", "POST", "/bills/fetch", {"account": "1"}).status == 404
    assert call(sim.port, "TEL01", "POST", "/bills/other", {}).status == 404
    wrong_method = call(sim.port, "TEL01", "GET", "/bills/fetch")
    assert (wrong_method.status, wrong_method.json()["error"]) == (405, "method_not_allowed")


def test_control_api_refuses_bad_faults(sim: BillerSimProcess) -> None:
    for faults in ({"delay": -1}, {"error": 404}, {"decline": "nope"}, {"ops": ["pay", "x"]},
                   {"corrupt": "zip"}, {"whatever": 1}, {"count": 0}):  # fmt: skip
        answer = call(sim.port, "_control", "POST", "/TEL01", faults, signed=False)
        assert (answer.status, answer.json()["error"]) == (400, "bad_request"), faults
    assert sim.control("TEL01")["faults"]["error"] is None
    listing = call(sim.port, "_control", "GET", "", signed=False).json()
    assert listing == {"billers": ["PWR01", "TEL01"]}


def test_concurrent_payments_each_stand_or_fall_alone(sim: BillerSimProcess) -> None:
    """Payments committed together (one transaction per turn of the store) still succeed
    or fail one by one: a refused one undoes only itself, a repeated id counts once."""
    before = sim.account("TEL01", "5550002")["amount_due"]
    bodies = []
    for n in range(40):
        bodies.append(payment(f"api-many-{n}", "5550002", 10**9 if n % 4 == 0 else 3))
        if n % 5 == 0:
            bodies.append(payment(f"api-many-{n}", "5550002", 10**9 if n % 4 == 0 else 3))
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda b: call(sim.port, "TEL01", "POST", "/payments", b), bodies))
    accepted = {b["payment_id"] for b, a in zip(bodies, answers, strict=True) if a.status == 200}
    refused = {b["payment_id"] for b, a in zip(bodies, answers, strict=True) if a.status == 422}
    assert accepted == {f"api-many-{n}" for n in range(40) if n % 4}
    assert refused == {f"api-many-{n}" for n in range(40) if n % 4 == 0}
    stored = [
        p["payment_id"] for p in sim.payments("TEL01") if p["payment_id"] in accepted | refused
    ]
    assert sorted(stored) == sorted(accepted)
    assert sim.account("TEL01", "5550002")["amount_due"] == before - 3 * len(accepted)
