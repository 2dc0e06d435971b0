"""Wireshark's ISO 8583 dissector decodes what the running switch sends and receives.

A real switch process answers a session of requests over TCP; the exact
bytes of both directions go into a pcap (one TCP connection) that tshark
dissects with length "Big endian" and binary data "not encoded". Every
field tshark reads must equal what our codec reads, tshark must report
nothing malformed, and each answer as tshark reads it must say what the spec
requires (MTI, DE 39, the echoed identity, DE 48/54/70/90/95 as sent or
expected), on both backends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iso.dialect import SPEC, decode_message
from iso.framing import BINARY2, encode_frame
from switch.cli import main
from tests import client as c
from tests.conftest import BACKENDS, backend_url
from tests.pcap import TSHARK_MISSING, have_tshark, tshark_decode, tshark_fields, write_pcap
from tests.switch_process import SwitchProcess

pytestmark = pytest.mark.skipif(not have_tshark(), reason=TSHARK_MISSING)

BINARY = {key for key, spec in SPEC.items() if spec["data_enc"] == "b"}
REFRESH = "reference_refresh = 0.3  # seconds: the fee rules added below are seen quickly\n"


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SwitchProcess]:  # type: ignore[no-untyped-def]
    """The demo switch with fee rules: MOB01 charges the payer 150 (DE 28 on the wire);
    UTIL01 through the host link 1, whose inquiry shows when the rules are served."""
    home = tmp_path_factory.mktemp("switch")
    for url in backend_url(request.param, home):
        with SwitchProcess.start(home, url, top_config=REFRESH) as proc:
            where = ["--home", str(home), "--db", url]
            assert main(["fees", "add", "--biller", "MOB01", "--fixed", "150", *where]) == 0
            rule = ["--biller", "UTIL01", "--acquirer", "200002", "--fixed", "1"]
            assert main(["fees", "add", *rule, *where]) == 0
            deadline = time.monotonic() + 60
            with proc.client("host") as host:
                c.sign_on(host, terminal="", acquirer="200002")
                inquiry = c.inquiry("1000001", terminal="", acquirer="200002")
                while host.call(dict(inquiry, **c.terminal_fields("", "200002"))).get("28") is None:
                    assert time.monotonic() < deadline, "the switch never served the fee rules"
                    time.sleep(0.1)
            yield proc


def _session(proc: SwitchProcess, channel: str, requests: list[dict[str, str]]) -> list:
    """Send each request, read its answer; returns the framed bytes of both directions."""
    exchanges = []
    with proc.client(channel) as conn:
        for request in requests:
            sent = conn.send(request)
            exchanges.append((encode_frame(BINARY2, sent), True))
            exchanges.append((encode_frame(BINARY2, conn.recv_raw()), False))
    return exchanges


# What each answer must say, as Wireshark decodes it: (MTI, DE 39, fields beyond the
# echoed identity; a compiled pattern where the value varies, e.g. RN).
Expected = tuple[str, str, dict[str, str | re.Pattern[str]]]
INQUIRY_BILL = "BL006UTIL01AC0071000001NM009GIL*** P.DU012000000012345"  # README's example


def _atm_requests() -> list[tuple[dict[str, str], Expected]]:
    pay = c.payment("1000002", 1500)
    reverse = c.reversal(pay, kept=500)
    inquired = {"3": "310000", "48": INQUIRY_BILL, "54": "0040944D000000012345"}
    return [
        (c.network("001"), ("0810", "00", {"70": "001"})),
        (c.inquiry("1000001"), ("0210", "00", inquired)),
        (c.inquiry("1000001", mti="0100"), ("0110", "00", inquired)),
        (
            pay,
            (
                "0210",
                "00",
                {
                    "3": "500000",
                    "4": "000000001500",
                    "28": "D00000000",
                    "38": re.compile(r"[0-9A-Za-z]{6}"),
                    "48": re.compile(r"BL006UTIL01AC0071000002RN011P\d{10}DU012\d{12}"),
                    "49": "944",
                },
            ),
        ),
        (
            reverse,
            ("0410", "00", {k: reverse[k] for k in ("3", "4", "49", "90", "95")}),
        ),
        (
            c.payment("994500000001", 1000, biller="MOB01"),
            (
                "0210",
                "00",
                {
                    "28": "D00000150",  # the payer's fee, on top of DE 4
                    "38": re.compile(r"[0-9A-Za-z]{6}"),
                    "48": re.compile(r"BL005MOB01AC012994500000001RN011P\d{10}"),
                },
            ),
        ),
        (c.inquiry("9999999"), ("0210", "14", {"3": "310000"})),
        (c.network("301"), ("0810", "00", {"70": "301"})),
    ]


def _host_requests() -> list[tuple[dict[str, str], Expected]]:
    totals = {"76": "0" * 10, "97": "D" + "0" * 16}  # no traffic: the totals match
    return [
        (c.network("001", terminal="", acquirer="200002"), ("0810", "00", {"70": "001"})),
        (c.reconciliation("200002", terminal="", **totals), ("0510", "00", totals)),
    ]


def _check_answer(request: dict[str, str], seen: dict[str, str], expected: Expected) -> None:
    """The answer as tshark decoded it: MTI, DE 39, the echoed identity, and ``expected``."""
    mti, code, fields = expected
    assert (seen["t"], seen["39"]) == (mti, code), seen
    for de in ("7", "11", "32", "41"):
        assert seen.get(de) == request.get(de), (de, seen)
    for de, value in fields.items():
        if isinstance(value, re.Pattern):
            assert value.fullmatch(seen.get(de, "")), (de, seen)
        else:
            assert seen.get(de) == value, (de, seen)
    for de in ("38", "48"):  # an approval code and bill data only where expected
        if de not in fields:
            assert de not in seen, (de, seen)


def _comparable(key: str, value: str) -> str:
    # Wireshark 4.0 prints a stray byte after binary values; compare the 16 hex digits.
    return value[:16].upper() if key in BINARY else value


@pytest.mark.parametrize(
    ("channel", "requests"), [("atm", _atm_requests), ("host", _host_requests)]
)
def test_wireshark_decodes_the_switch_traffic(
    switch: SwitchProcess, tmp_path: Path, channel: str, requests
) -> None:
    session = requests()
    exchanges = _session(switch, channel, [request for request, _ in session])
    path = tmp_path / "switch.pcap"
    port = switch.ports[channel]
    write_pcap(path, exchanges, port)

    text = tshark_decode(path, port)
    assert "Malformed" not in text
    assert "Expert Info (Error" not in text
    decoded = tshark_fields(path, port)
    assert len(decoded) == len(exchanges)
    for (framed, _), seen in zip(exchanges, decoded, strict=True):
        ours = decode_message(framed[2:])
        expected = {k: v for k, v in ours.items() if k not in ("p", "1")}
        assert {k: _comparable(k, v) for k, v in seen.items()} == {
            k: _comparable(k, v) for k, v in expected.items()
        }
    # Each answer, as Wireshark reads it, says what the spec says it must.
    answers = decoded[1::2]
    for (request, expected), seen in zip(session, answers, strict=True):
        _check_answer(request, seen, expected)
