"""The online adapter against a broken biller over real HTTP: every way of breaking ends
in a clean BillerError with its response code, a log line, and no call left hanging.

Money decides the code: a request that went out and got no answer we can trust is
``InDoubt`` (68, the biller may hold the payment); one that never reached the biller,
or that the biller itself (signed) says it did not take, is ``Unavailable`` (91). A
bill inquiry moves no money: every failure of it is ``Unavailable``. Time limits run
on the test's clock: a hanging call fails exactly when the test advances it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from routing.billers import BillerError, InDoubt, Unavailable
from tests.hsm.hsm_support import ReactorThread, started, waited
from tests.routing.conftest import Served
from tests.routing.online_support import Online, make_online, payment

# Answers that came but cannot be trusted or read: in doubt for a payment.
UNREADABLE = [
    "garbage",
    "wrong_types",
    "json_list",
    "html_502",
    "bad_signature",
    "no_signature",
    "stale_signature",
    "cut_body",
    "close",
    "not_http",
    "huge",
]


@pytest.fixture
def online(reactor_thread: ReactorThread, broken: Served) -> Iterator[Online]:
    made = make_online(reactor_thread, broken)
    yield made
    reactor_thread.call(made.adapter.close)


def _fails(online: Online, operation: str, *args: object) -> BillerError:
    with pytest.raises(BillerError) as raised:
        online.call(operation, *args)
    return raised.value


@pytest.mark.parametrize("behaviour", UNREADABLE)
def test_an_untrustworthy_answer_to_a_payment_is_in_doubt(online: Online, behaviour: str) -> None:
    online.served.biller.behave("BROKEN", behaviour)
    with capture_logs() as logs:
        error = _fails(online, "pay", "BROKEN", payment())
    assert type(error) is InDoubt and error.code == "68" and error.moved
    line = next(e for e in logs if e["event"] == "biller call failed")
    assert (line["biller"], line["operation"], line["code"]) == ("BROKEN", "pay", "68")
    assert line["reason"]
    assert "secret" not in str(line).lower()


@pytest.mark.parametrize("behaviour", UNREADABLE)
def test_an_untrustworthy_answer_to_status_or_reversal_is_in_doubt(
    online: Online, behaviour: str
) -> None:
    online.served.biller.behave("BROKEN", behaviour)
    assert type(_fails(online, "status", "BROKEN", "P-1")) is InDoubt
    assert type(_fails(online, "reverse", "BROKEN", "P-1")) is InDoubt


@pytest.mark.parametrize("behaviour", [*UNREADABLE, "unavailable"])
def test_any_failure_of_a_bill_inquiry_is_unavailable(online: Online, behaviour: str) -> None:
    online.served.biller.behave("BROKEN", behaviour)
    error = _fails(online, "fetch_bill", "BROKEN", "5550001", None)
    assert type(error) is Unavailable and error.code == "91" and not error.moved


def test_a_signed_5xx_is_unavailable(online: Online) -> None:
    online.served.biller.behave("DOWN", "unavailable")
    error = _fails(online, "pay", "DOWN", payment())
    assert type(error) is Unavailable and error.code == "91" and not error.moved


def test_the_adapter_goes_on_after_broken_answers(online: Online) -> None:
    for behaviour in UNREADABLE:
        online.served.biller.behave("BROKEN", behaviour)
        _fails(online, "pay", "BROKEN", payment())
    assert online.call("pay", "TEL01", payment()).biller_ref


@pytest.mark.parametrize("behaviour", ["hang", "hang_mid_body"])
def test_a_hanging_biller_times_out_in_doubt_and_its_connection_is_dropped(
    online: Online, behaviour: str
) -> None:
    biller = online.served.biller
    biller.behave("SLOW", behaviour)
    call = started(online.thread, online.adapter.pay, "SLOW", payment())
    biller.wait_for("SLOW", 1)  # the request reached the biller
    online.expire()
    with pytest.raises(InDoubt):
        waited(online.thread, call)
    biller.wait_dropped("SLOW", 1)  # the client gave up the connection


def test_a_hanging_inquiry_times_out_unavailable(online: Online) -> None:
    online.served.biller.behave("SLOW", "hang")
    call = started(online.thread, online.adapter.fetch_bill, "SLOW", "5550001", None)
    online.served.biller.wait_for("SLOW", 1)
    online.expire()
    with pytest.raises(Unavailable):
        waited(online.thread, call)


def test_connection_refused_is_unavailable(reactor_thread: ReactorThread, broken: Served) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    online = make_online(reactor_thread, Served(broken.biller, free))
    error = _fails(online, "pay", "TEL01", payment())
    assert type(error) is Unavailable and "not sent" in str(error)


def test_a_connect_that_never_completes_times_out_unavailable(
    reactor_thread: ReactorThread, broken: Served
) -> None:
    """A listener whose accept queue is full drops new connection attempts (SYNs): the
    time limit ends the attempt; nothing was sent, so nothing is in doubt."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        for _ in range(4):  # fill the accept queue (nobody accepts)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        online = make_online(reactor_thread, Served(broken.biller, port), timeout=30.0)
        call = started(reactor_thread, online.adapter.pay, "TEL01", payment())
        online.expire(30.0)
        error = waited(reactor_thread, call.addErrback(lambda f: f.value))
        for filler in fillers:
            filler.close()
    assert type(error) is Unavailable, error
    assert "not sent" in str(error) and "Cancelled" in str(error), error
