"""Prebuilt requests, response MACs checked after the window, many on-us cards, lean reads.

No network: a fake transport and a manual clock. Test-only demo values
(README): ATM00001's TAK and TPK, card 9990001000000001 with PIN 1234.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from hsm_sim.crypto.des import decrypt_ecb
from hsm_sim.crypto.pinblock import make_iso0
from iso.bill_data import build_bill_data
from iso.dialect import decode_message, encode_message, response_mti
from iso.framing import BINARY2, FrameDecoder, encode_frame
from loadtest import prebuild, report, security, workload
from loadtest.budget import DebtBook
from loadtest.client import BAD_MAC, Framing, Reply, TerminalProtocol, WireCounters
from loadtest.config import RunConfig, parse_mix
from loadtest.identity import Counters, identities
from loadtest.ledger_check import LedgerFacts
from loadtest.response import read_response
from loadtest.stats import OK, Recorder, Window
from loadtest.traffic import Traffic

TAK = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
TPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PAN, PIN = "9990001000000001", "1234"
ATM1, ATM2 = identities("atm")[:2]
ACCOUNTS = [str(n) for n in range(1000001, 1000011)]


def luhn_ok(pan: str) -> bool:
    return security.luhn_digit(pan[:-1]) == pan[-1]


def make_traffic(
    mix: str = "payment=100", cards: tuple[security.OnUsCard, ...] = (), seed: int = 5
) -> tuple[Traffic, LedgerFacts]:
    rng = random.Random(seed)
    started = datetime.now(UTC)
    facts = LedgerFacts(started, "100001", {"ATM00001", "ATM00002"})
    book = DebtBook(dict.fromkeys(ACCOUNTS), 100, rng)
    recorder = Recorder(Window(0.0, 1e9))
    traffic = Traffic(
        parse_mix(mix), book, Counters(started, rng), facts, recorder, Clock(), rng, cards
    )
    return traffic, facts


FRAMING = Framing(BINARY2, mac_key=TAK)


class _Transport(StringTransport):
    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
        pass


def connection(macs: security.ResponseMacs | None) -> tuple[TerminalProtocol, _Transport]:
    conn = TerminalProtocol(ATM1, FRAMING, Clock(), 5.0, WireCounters(), macs)
    transport = _Transport()
    conn.makeConnection(transport)
    return conn, transport


def sent_requests(transport: _Transport) -> list[bytes]:
    """The message payloads written so far (and clear the transport)."""
    frames = FrameDecoder(BINARY2).feed(transport.value())
    transport.clear()
    return [bytes(frame.payload) for frame in frames]


def answer(request: bytes, key: bytes, extra: dict[str, str] | None = None) -> bytes:
    """The echo server's answer: response MTI, 00, MACed under ``key``."""
    fields = {k: v for k, v in decode_message(request).items() if k not in ("p", "1")}
    fields |= {"t": response_mti(fields["t"]), "39": "00"} | (extra or {})
    return encode_frame(BINARY2, security.signed_message(fields, key))


# -- many cards ---------------------------------------------------------------


def test_cards_start_with_the_given_one_and_stay_in_its_bin_luhn_valid() -> None:
    pans = security.card_pans(PAN, 25)
    assert pans[0] == PAN and len(set(pans)) == 25
    assert all(len(p) == 16 and p.startswith("999000") and luhn_ok(p) for p in pans)
    assert pans[1] == "9990001000000019"  # the next account number, its own check digit
    assert security.card_pans(PAN, 25) == pans  # deterministic: bench and run agree
    with pytest.raises(ValueError, match="BIN"):
        security.card_pans("9990009999999995", 10)


def test_every_card_has_its_own_pin_block_of_the_same_pin() -> None:
    cards = security.on_us_cards(PAN, PIN, TPK, 3)
    assert len({card.pin_block for card in cards}) == 3
    for card in cards:
        assert decrypt_ecb(TPK, bytes.fromhex(card.pin_block)) == make_iso0(PIN, card.pan)


def test_payments_are_spread_over_the_cards_at_random() -> None:
    cards = security.on_us_cards(PAN, PIN, TPK, 4)
    traffic, _ = make_traffic(cards=cards)
    used = Counter(traffic.plan(ATM1).fields["2"] for _ in range(400))  # type: ignore[index]
    assert set(used) == {card.pan for card in cards}
    assert min(used.values()) > 50


def test_cards_need_an_on_us_card() -> None:
    card = security.on_us_card(PAN, PIN, TPK)
    with pytest.raises(ValueError, match="on-us"):
        RunConfig(cards=(card,)).validate()
    assert RunConfig(on_us=card).on_us_cards == (card,)
    assert RunConfig().on_us_cards == ()


# -- how many to prebuild -------------------------------------------------------


def test_pool_size_from_rate_duration_or_the_closed_loop_guess() -> None:
    rate = RunConfig(rate=100, duration=10, warmup=2)
    assert prebuild.pool_size(rate, 4) == 1320 + 4
    closed = RunConfig(duration=2, warmup=1, concurrency=3)
    assert prebuild.pool_size(closed, 5) == 3 * prebuild.CLOSED_LOOP_RATE + 15
    assert prebuild.pool_size(RunConfig(duration=3600), 1) == prebuild.POOL_CAP
    assert prebuild.pool_size(replace(closed, prebuild=0), 5) == 0
    assert prebuild.size_after_echo(closed, 1000.0) == 3750 + 20 * 3
    assert prebuild.size_after_echo(rate, 1000.0) is None  # rate mode knows already


# -- building -------------------------------------------------------------------


def test_prebuilt_requests_are_framed_maced_and_spread_like_the_connections() -> None:
    cards = security.on_us_cards(PAN, PIN, TPK, 2)
    traffic, _ = make_traffic("inquiry=20,payment=70,reversal=10", cards)
    ready, reversals, built = prebuild.build(traffic, FRAMING, [ATM1, ATM1, ATM2], 300, 1000.0)
    assert built.requests == 300
    assert len(ready[ATM1.key]) == 200 and len(ready[ATM2.key]) == 100
    kinds = Counter(p.kind for queue in ready.values() for p in queue)
    assert kinds["payment"] > kinds["inquiry"] > kinds["reversal"] > 0
    for planned in ready[ATM1.key]:
        if planned.kind == "reversal":
            assert planned.frame is None and planned.original is None  # chosen when sent
            continue
        assert planned.frame is not None and planned.fields is None
        payload = FrameDecoder(BINARY2).feed(planned.frame)[0].payload
        fields = decode_message(payload)
        assert security.mac_ok(payload, fields, TAK)
        assert workload.match_key(fields) == planned.key
        assert fields["11"] == planned.header.stan and fields["41"] == "ATM00001"
        if planned.kind == "payment":
            assert fields["2"] in {c.pan for c in cards} and fields["52"]
    # reversals of the first payments, ready too, pointing at their payment
    assert built.reversals == len(reversals) > 0
    first = next(p for p in ready[ATM1.key] if p.kind == "payment")
    reversal = reversals[first.header.rrn]
    fields = decode_message(FrameDecoder(BINARY2).feed(reversal.frame or b"")[0].payload)
    assert fields["t"] == "0400" and fields["90"][4:10] == first.header.stan
    assert fields["37"] == first.header.rrn and "128" in fields


def moment(transmitted: str, near: datetime) -> datetime:
    """DE 7 (MMDDhhmmss, UTC) as the moment nearest to ``near``: DE 7 has no year, so
    the year is the one that puts it nearest (as the spec's identity rule does)."""
    found = []
    for year in (near.year - 1, near.year, near.year + 1):
        try:
            found.append(datetime.strptime(f"{year}{transmitted}", "%Y%m%d%H%M%S"))
        except ValueError:  # 29 February of a common year
            continue
    return min((m.replace(tzinfo=UTC) for m in found), key=lambda m: abs(m - near))


@pytest.mark.parametrize(
    ("transmitted", "near", "expected"),
    [
        ("1231235959", datetime(2027, 1, 1, 0, 1, tzinfo=UTC), datetime(2026, 12, 31, 23, 59, 59)),
        ("0101000130", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2027, 1, 1, 0, 1, 30)),
        ("0229120000", datetime(2028, 2, 29, 11, 59, tzinfo=UTC), datetime(2028, 2, 29, 12)),
        ("0301000000", datetime(2027, 2, 28, 23, 59, tzinfo=UTC), datetime(2027, 3, 1)),
    ],
)
def test_moment_of_de7_across_new_year_and_29_february(
    transmitted: str, near: datetime, expected: datetime
) -> None:
    """The helper below holds where year-1900 parsing failed (no 29 February in 1900;
    December and January a year apart)."""
    assert moment(transmitted, near) == expected.replace(tzinfo=UTC)


def test_stamps_are_the_expected_send_times_not_the_build_time() -> None:
    stamper = prebuild.Stamper(count=1000, rate=10.0)
    now = datetime.now(UTC)
    first, last = stamper.stamp(0), stamper.stamp(999)
    when_first, when_last = moment(first.transmitted, now), moment(last.transmitted, now)
    assert 98 <= (when_last - when_first).total_seconds() <= 101  # 1000 at 10/s
    assert abs((when_first - now).total_seconds()) < 5


# -- sending prebuilt, checking MACs after the window -----------------------------


def _send(traffic: Traffic, conn: TerminalProtocol) -> list[Reply]:
    """Start one send; the list gets its Reply once the answer is fed in."""
    replies: list[Reply] = []
    Deferred.fromCoroutine(traffic.send(conn, 0.0)).addCallback(replies.append)
    return replies


def test_a_prebuilt_frame_is_sent_as_is_and_its_mac_checked_after_the_window() -> None:
    traffic, facts = make_traffic()
    ready, reversals, _ = prebuild.build(traffic, FRAMING, [ATM1], 3, 1000.0)
    frames = [p.frame for p in ready[ATM1.key]]
    first_amount = ready[ATM1.key][0].amount
    traffic.use_prebuilt(ready, reversals)
    macs = security.ResponseMacs(TAK)
    conn, transport = connection(macs)

    good = _send(traffic, conn)
    (request,) = sent_requests(transport)
    assert encode_frame(BINARY2, request) == frames[0]
    conn.dataReceived(answer(request, TAK, {"48": build_bill_data({"RN": "41"})}))
    forged = _send(traffic, conn)
    (request,) = sent_requests(transport)
    conn.dataReceived(answer(request, TPK))  # a MAC under the wrong key
    unsigned = _send(traffic, conn)
    (request,) = sent_requests(transport)
    fields = {k: v for k, v in decode_message(request).items() if k not in ("p", "1", "64")}
    conn.dataReceived(encode_frame(BINARY2, encode_message(fields | {"t": "0210", "39": "00"})))

    # in the window: no crypto, so the forged one still counts; a missing MAC fails at once
    assert [r[0].status for r in (good, forged, unsigned)] == [OK, OK, BAD_MAC]
    assert facts.approved == {41: first_amount}
    assert (macs.checked, macs.failed, macs.pending) == (1, 1, 2)
    macs.verify()  # after the window
    assert (macs.checked, macs.failed, macs.pending) == (3, 2, 0)
    assert traffic.prebuilt_left == 0 and not traffic.built_live


def test_a_late_mac_failure_fails_the_run() -> None:
    summary = {"errors": {}, "response_macs": {"checked": 10, "verified": 10}}
    assert report.authentic(summary)
    assert "response MACs verified: 10 of 10" in report.summary_lines(_full(summary))
    summary["response_macs"] = {"checked": 10, "verified": 9}
    assert not report.authentic(summary)
    assert "response MACs verified: 9 of 10  FAILED" in report.summary_lines(_full(summary))
    assert not report.authentic({"errors": {"signon_bad_mac": 1}})
    assert report.authentic({"errors": {"timeout": 3}})


def _full(extra: dict[str, object]) -> dict[str, object]:
    """A run summary with everything summary_lines needs."""
    base: dict[str, object] = {
        "target": "127.0.0.1:1",
        "channel": "atm",
        "mode": "closed",
        "connections": 1,
        "signed_on": 1,
        "concurrency": 1,
        "rate": None,
        "warmup_s": 0.0,
        "window_s": 1.0,
        "responses": 10,
        "tps": 10.0,
        "approved_payments": 0,
        "approved_payments_per_s": 0.0,
        "latency_ms": {"p50": 1, "p95": 1, "p99": 1, "max": 1, "count": 10},
        "response_codes": {},
        "timeouts": 0,
        "fallbacks": {},
        "notes": [],
    }
    return base | extra


def test_a_reversal_uses_the_prebuilt_one_of_its_payment() -> None:
    traffic, facts = make_traffic("payment=50,reversal=50", seed=3)
    ready, reversals, _ = prebuild.build(traffic, FRAMING, [ATM1], 40, 1000.0)
    queue = ready[ATM1.key]
    while queue[0].kind != "payment":  # start with a payment, then its reversal
        queue.popleft()
    payment = queue[0]
    placeholder = next(p for p in queue if p.kind == "reversal")
    queue.remove(placeholder)
    queue.insert(1, placeholder)
    expected = reversals[payment.header.rrn].frame
    traffic.use_prebuilt(ready, reversals)
    conn, transport = connection(security.ResponseMacs(TAK))

    _send(traffic, conn)
    (request,) = sent_requests(transport)
    conn.dataReceived(answer(request, TAK, {"48": build_bill_data({"RN": "77"})}))
    assert facts.approved == {77: payment.amount}
    _send(traffic, conn)
    (request,) = sent_requests(transport)
    assert encode_frame(BINARY2, request) == expected
    assert payment.header.rrn not in reversals  # each used once
    conn.dataReceived(answer(request, TAK))
    assert facts.reversed == {77}
    assert not traffic.built_live  # nothing built in the window


def test_without_prebuilt_requests_responses_are_checked_at_once() -> None:
    traffic, _ = make_traffic()
    macs = security.ResponseMacs(TAK)
    conn, transport = connection(macs)
    replies = _send(traffic, conn)
    (request,) = sent_requests(transport)
    conn.dataReceived(answer(request, TPK))
    assert replies[0].status == BAD_MAC and macs.checked == 0


def test_running_out_builds_on_the_fly_and_says_so() -> None:
    traffic, _ = make_traffic()
    ready, reversals, _ = prebuild.build(traffic, FRAMING, [ATM1], 1, 1000.0)
    traffic.use_prebuilt(ready, reversals)
    conn, transport = connection(security.ResponseMacs(TAK))
    for _ in range(3):
        _send(traffic, conn)
        (request,) = sent_requests(transport)
        conn.dataReceived(answer(request, TAK))
    assert traffic.built_live == {"after the prebuilt ran out": 2}


# -- the lean response reader ------------------------------------------------------


def test_the_lean_reader_agrees_with_the_full_decoder() -> None:
    card = security.on_us_card(PAN, PIN, TPK)
    header = workload.Header(ATM1, "000123", workload.stamp_now(), "263250000001")
    original = workload.Original(header, "1000002", 50, 7)
    messages = [
        workload.payment(header, "1000002", 5, card=card),
        workload.reversal(replace(header, stan="000124"), original),
        workload.network(identities("host")[0], "000001", header.stamp),
    ]
    for fields in messages:
        response = fields | {"t": response_mti(fields["t"]), "39": "05", "48": "RN0100000009"}
        raw = security.signed_message(response, TAK)
        lean = read_response(raw)
        full = decode_message(raw)
        assert lean is not None
        assert lean == {k: v for k, v in full.items() if k in lean}
        assert {"t", "11", "39"} <= set(lean) and ("64" in lean or "128" in lean)


@pytest.mark.parametrize("raw", [b"", b"0210", b"0210" + b"\x00" * 8 + b"extra", b"\xff" * 30])
def test_the_lean_reader_leaves_oddities_to_the_full_decoder(raw: bytes) -> None:
    assert read_response(raw) is None


def test_prebuild_stays_below_a_terminals_stans() -> None:
    RunConfig(prebuild=0).validate()
    with pytest.raises(ValueError, match="STAN"):
        RunConfig(prebuild=999_999).validate()
