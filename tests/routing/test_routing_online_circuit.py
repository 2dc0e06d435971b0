"""The online adapter's circuit breaker and in-flight limit over real HTTP: a dead biller
costs no network call once its circuit is open, is probed once, and comes back; the
calls over a biller's limit are refused at once. The server counts what reached it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet.defer import DeferredList

from routing.billers import AmountNotAccepted, InDoubt, Unavailable
from routing.circuit import State, Thresholds
from routing.metrics import BILLER_CALLS, CIRCUIT_STATE
from tests.hsm.hsm_support import ReactorThread, started, waited
from tests.routing.conftest import Served
from tests.routing.online_support import Online, make_online, payment

LIMITS = Thresholds(failures=3, ratio=1.0, window=100, open_for=10.0)


@pytest.fixture
def online(reactor_thread: ReactorThread, broken: Served) -> Iterator[Online]:
    made = make_online(reactor_thread, broken, LIMITS, max_in_flight=2)
    yield made
    reactor_thread.call(made.adapter.close)


def _refused(name: str, operation: str) -> float:
    value = BILLER_CALLS.labels(name, operation, "circuit_open")._value.get()
    return float(value)


def test_a_dead_biller_opens_its_circuit_and_then_costs_no_call(online: Online) -> None:
    biller = online.served.biller
    biller.behave("DEAD", "unavailable")
    for _ in range(3):
        with pytest.raises(Unavailable):
            online.call("pay", "DEAD", payment())
    assert biller.requests["DEAD"] == 3
    assert online.adapter.circuit_state("DEAD") is State.OPEN
    assert CIRCUIT_STATE.labels("DEAD")._value.get() == State.OPEN
    before = _refused("DEAD", "fetch")
    for operation, args in [
        ("pay", (payment(),)),
        ("fetch_bill", ("5550001", None)),
        ("status", ("P-1",)),
        ("reverse", ("P-1",)),
    ]:
        with pytest.raises(Unavailable, match="circuit open"):
            online.call(operation, "DEAD", *args)
    assert biller.requests["DEAD"] == 3  # none of them reached the network
    assert _refused("DEAD", "fetch") == before + 1
    assert online.call("pay", "TEL01", payment()).biller_ref  # other billers unaffected


def test_the_circuit_half_opens_for_one_probe_and_closes_on_success(online: Online) -> None:
    biller = online.served.biller
    biller.behave("FLAKY", "unavailable")
    for _ in range(3):
        with pytest.raises(Unavailable):
            online.call("pay", "FLAKY", payment())
    online.expire(10.0)
    assert online.adapter.circuit_state("FLAKY") is State.HALF_OPEN
    biller.behave("FLAKY", "hang")
    probe = started(online.thread, online.adapter.pay, "FLAKY", payment())
    biller.wait_for("FLAKY", 4)
    with pytest.raises(Unavailable, match="circuit open"):  # one probe at a time
        online.call("pay", "FLAKY", payment())
    assert biller.requests["FLAKY"] == 4
    online.expire()  # the probe times out: open again, for the full time
    with pytest.raises(InDoubt):
        waited(online.thread, probe)
    assert online.adapter.circuit_state("FLAKY") is State.OPEN
    online.expire(10.0)
    biller.behave("FLAKY", "ok")
    assert online.call("pay", "FLAKY", payment()).biller_ref  # the probe succeeds
    assert online.adapter.circuit_state("FLAKY") is State.CLOSED
    for _ in range(3):
        online.call("fetch_bill", "FLAKY", "5550001", None)
    assert biller.requests["FLAKY"] == 8


def test_declines_do_not_open_the_circuit(online: Online) -> None:
    online.served.biller.behave("PICKY", "error:amount_not_accepted")
    for _ in range(6):
        with pytest.raises(AmountNotAccepted):
            online.call("pay", "PICKY", payment())
    assert online.adapter.circuit_state("PICKY") is State.CLOSED
    assert online.served.biller.requests["PICKY"] == 6


def test_calls_over_the_in_flight_limit_are_refused_at_once(online: Online) -> None:
    biller = online.served.biller
    biller.behave("BUSY", "hang")
    first = started(online.thread, online.adapter.pay, "BUSY", payment())
    second = started(online.thread, online.adapter.status, "BUSY", "P-1")
    biller.wait_for("BUSY", 2)
    with pytest.raises(Unavailable, match="busy"):
        online.call("pay", "BUSY", payment())
    assert biller.requests["BUSY"] == 2
    online.expire()
    results = waited(online.thread, DeferredList([first, second], consumeErrors=True))
    assert all(not ok and failure.check(InDoubt) for ok, failure in results)
    biller.behave("BUSY", "ok")
    assert online.call("pay", "BUSY", payment()).biller_ref  # room again
