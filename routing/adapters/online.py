"""Adapter for online billers: their HTTP JSON API (../shared/spec/billers.md).

Each call goes through three gates before it touches the network: the biller
must have an endpoint, fewer than ``Endpoint.max_in_flight`` calls to it may be
under way, and its circuit breaker must let the call through. A refused call
fails at once with ``Unavailable`` (91): a dead or swamped biller costs its
terminals an immediate answer, not a time-out each.

Then ``routing.biller_http`` makes the signed exchange and
``routing.adapters.online_answers`` says what the answer means. A call that may
move money (pay, reverse, status) that went out and got no trustworthy answer is
``InDoubt`` (68): the caller settles it by status check and reversal. A bill
inquiry moves nothing, so every failure of it is ``Unavailable``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.python.failure import Failure

from routing import signing
from routing.adapters import online_answers as answers
from routing.biller_http import IDLE_TIMEOUT, BillerLine, Lost, NotSent
from routing.billers import (
    Accepted,
    AccountClosed,
    AmountNotAccepted,
    BillerError,
    Conflict,
    Endpoint,
    InDoubt,
    PaymentRequest,
    PaymentStatus,
    Refused,
    ReversedThere,
    Unavailable,
    UnknownAccount,
)
from routing.bills import Bill
from routing.circuit import DEFAULT, Circuit, State, Thresholds
from routing.metrics import BILLER_CALLS, BILLER_SECONDS, CIRCUIT_STATE

log = structlog.get_logger("routing.online")

T = TypeVar("T")
EndpointLookup = Callable[[str], Endpoint | None]

# The outcome label of each error (billswitch_biller_calls_total).
OUTCOMES: dict[type[BillerError], str] = {
    UnknownAccount: "unknown_account",
    AmountNotAccepted: "amount_not_accepted",
    AccountClosed: "account_closed",
    Refused: "refused",
    Conflict: "conflict",
    ReversedThere: "reversed_there",
    Unavailable: "unavailable",
    InDoubt: "in_doubt",
}
# Errors that say the biller is unwell (they count against its circuit); the
# others are answers of a live biller.
UNWELL = (Unavailable, InDoubt)


@functools.cache
def _calls(code: str, operation: str, outcome: str) -> Any:
    """The counter of one biller, operation and outcome (looked up once, not per call)."""
    return BILLER_CALLS.labels(code, operation, outcome)


@functools.cache
def _seconds(code: str, operation: str) -> Any:
    return BILLER_SECONDS.labels(code, operation)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Biller:
    """One biller's connection, circuit breaker and calls under way."""

    line: BillerLine
    circuit: Circuit
    in_flight: int = 0


class OnlineAdapter:
    """Online billers, each reached through ``endpoint(biller_code)``."""

    kind = "online"
    remote = True

    def __init__(
        self,
        reactor: Any,
        endpoint: EndpointLookup,
        thresholds: Thresholds = DEFAULT,
        now: Callable[[], datetime] = utc_now,
        idle_timeout: float = IDLE_TIMEOUT,
        persistent: bool = True,
    ) -> None:
        """``reactor`` provides TCP and time (the circuit's clock and the time limits);
        ``now`` is the wall clock of the signatures' timestamps; ``persistent=False``
        (a connection per call) exists to measure what connection reuse saves."""
        self._reactor = reactor
        self._endpoint = endpoint
        self._thresholds = thresholds
        self._now = now
        self._idle_timeout = idle_timeout
        self._persistent = persistent
        self._billers: dict[str, _Biller] = {}

    # ------------------------------------------------------------ the interface

    def fetch_bill(
        self, biller_code: str, account: str, period: str | None
    ) -> Deferred[Bill | None]:
        request: dict[str, Any] = {"account": account}
        if period is not None:
            request["period"] = period
        return self._call(
            biller_code,
            "fetch",
            b"POST",
            "/bills/fetch",
            _json(request),
            lambda answer: answers.bill(answer, account),
            moves_money=False,
        )

    def pay(self, biller_code: str, payment: PaymentRequest) -> Deferred[Accepted]:
        return self._call(
            biller_code, "pay", b"POST", "/payments", _payment_body(payment), answers.accepted
        )

    def reverse(self, biller_code: str, payment_id: str) -> Deferred[None]:
        path = f"/payments/{quote(payment_id, safe='')}/reversal"
        return self._call(biller_code, "reverse", b"POST", path, b"", answers.reversal_done)

    def status(self, biller_code: str, payment_id: str) -> Deferred[PaymentStatus | None]:
        path = f"/payments/{quote(payment_id, safe='')}"
        return self._call(
            biller_code,
            "status",
            b"GET",
            path,
            b"",
            lambda answer: answers.payment_status(answer, payment_id),
        )

    # ------------------------------------------------------------ operations

    def circuit_state(self, biller_code: str) -> State:
        """The biller's circuit as of now (closed for a biller not called yet)."""
        biller = self._billers.get(biller_code)
        return biller.circuit.state if biller else State.CLOSED

    def available(self, biller_code: str) -> bool:
        """False while the biller's circuit is open: a payment is then refused (91) before
        anything is written or sent, at the cost of a dictionary look-up."""
        return self.circuit_state(biller_code) is not State.OPEN

    def close(self) -> Deferred[Any]:
        """Close every biller's idle connections (at shutdown)."""
        return DeferredList([b.line.close() for b in self._billers.values()])

    # ------------------------------------------------------------ one call

    def _call(
        self,
        code: str,
        operation: str,
        method: bytes,
        path: str,
        body: bytes,
        read: Callable[[Any], T],
        moves_money: bool = True,
    ) -> Deferred[T]:
        endpoint = self._endpoint(code)
        if endpoint is None:
            return self._refused(code, operation, "no_endpoint")
        try:
            biller = self._biller(code, endpoint)
        except ValueError:  # a URL that cannot be one (not ASCII): a configuration error
            log.error("biller endpoint unusable", biller=code, exc_info=True)
            return self._refused(code, operation, "no_endpoint")
        if biller.in_flight >= endpoint.max_in_flight:
            return self._refused(code, operation, "busy")
        if not biller.circuit.allow():
            return self._refused(code, operation, "circuit_open")
        biller.in_flight += 1
        started = self._reactor.seconds()
        d = biller.line.exchange(method, path, body)
        d.addCallback(read)
        d.addErrback(_as_biller_error, code, operation, moves_money)
        d.addBoth(self._ended, biller, code, operation, started)
        return d

    def _biller(self, code: str, endpoint: Endpoint) -> _Biller:
        """The biller's state; made afresh when its endpoint changed."""
        biller = self._billers.get(code)
        if biller is not None and (
            biller.line.endpoint is endpoint or biller.line.endpoint == endpoint
        ):
            return biller
        if biller is not None:
            biller.line.close()
        line = BillerLine(self._reactor, endpoint, self._now, self._idle_timeout, self._persistent)
        circuit = Circuit(self._reactor, self._thresholds, _circuit_watcher(code))
        CIRCUIT_STATE.labels(code).set(State.CLOSED)
        biller = self._billers[code] = _Biller(line, circuit)
        return biller

    def _refused(self, code: str, operation: str, why: str) -> Deferred[Any]:
        """A call refused before the network: counted, not logged one by one (a dead
        biller's circuit refuses every call; its opening is logged once)."""
        _calls(code, operation, why).inc()
        return fail(Unavailable(why.replace("_", " ")))

    def _ended(
        self, result: Any, biller: _Biller, code: str, operation: str, started: float
    ) -> Any:
        biller.in_flight -= 1
        _seconds(code, operation).observe(self._reactor.seconds() - started)
        if not isinstance(result, Failure):
            biller.circuit.succeeded()
            found = result is not None or operation not in ("fetch", "status")
            _calls(code, operation, "ok" if found else "not_found").inc()
            return result
        error = result.value
        _calls(code, operation, OUTCOMES.get(type(error), "error")).inc()
        if isinstance(error, UNWELL):
            biller.circuit.failed()
            log.warning(
                "biller call failed",
                biller=code,
                operation=operation,
                code=error.code,
                reason=str(error),
            )
        else:
            biller.circuit.succeeded()
        return result


def _as_biller_error(failure: Failure, code: str, operation: str, moves_money: bool) -> Failure:
    """Transport failures and surprises as the BillerError they cost."""
    error = failure.value
    if isinstance(error, NotSent):
        error = Unavailable(f"not sent: {error}")
    elif isinstance(error, Lost):
        error = InDoubt(f"no answer: {error}")
    elif not isinstance(error, BillerError):
        log.error(
            "biller answer not handled",
            biller=code,
            operation=operation,
            exc_info=(type(error), error, failure.getTracebackObject()),
        )
        error = InDoubt(f"answer not handled: {type(error).__name__}")
    if not moves_money and isinstance(error, InDoubt):
        error = Unavailable(str(error))
    return Failure(error)


def _circuit_watcher(code: str) -> Callable[[State], None]:
    def changed(state: State) -> None:
        CIRCUIT_STATE.labels(code).set(state)
        say = log.warning if state is State.OPEN else log.info
        say("biller circuit", biller=code, state=state.name.lower())

    return changed


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _payment_body(payment: PaymentRequest) -> bytes:
    body: dict[str, Any] = {
        "payment_id": payment.payment_id,
        "account": payment.account,
        "amount": payment.amount,
        "currency": payment.currency,
        "paid_at": signing.timestamp(payment.paid_at),
        "channel": payment.channel,
    }
    if payment.invoice is not None:
        body["invoice"] = payment.invoice
    return _json(body)
