"""Helpers of the online adapter tests: an adapter on a clocked reactor, pointed at the
broken biller, and payments to make."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from routing.adapters.online import OnlineAdapter
from routing.billers import Endpoint, PaymentRequest
from routing.circuit import DEFAULT, Thresholds
from tests.hsm.hsm_support import ClockedReactor, ReactorThread
from tests.routing.conftest import Served

TIMEOUT = 3.0  # the billers' time limit, on the test clock: it passes when a test says
_ids = itertools.count(1)


@dataclass
class Online:
    """An adapter whose time (limits, circuit) is a Clock the test advances."""

    thread: ReactorThread
    served: Served
    reactor: ClockedReactor
    adapter: OnlineAdapter
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def call(self, operation: str, *args: Any) -> Any:
        """Run an adapter operation on the reactor and wait for its result."""
        return self.thread.call(getattr(self.adapter, operation), *args)

    def expire(self, seconds: float = TIMEOUT) -> None:
        self.thread.call(self.reactor.clock.advance, seconds)


def make_online(
    thread: ReactorThread, served: Served, thresholds: Thresholds = DEFAULT, **endpoint: Any
) -> Online:
    reactor = ClockedReactor(thread.reactor)
    endpoints: dict[str, Endpoint] = {}

    def lookup(code: str) -> Endpoint | None:
        if code == "NOSUCH":
            return None
        if code not in endpoints:
            endpoint.setdefault("timeout", TIMEOUT)
            endpoints[code] = served.biller.endpoint(served.port, code, **endpoint)
        return endpoints[code]

    return Online(thread, served, reactor, OnlineAdapter(reactor, lookup, thresholds), endpoints)


def payment(account: str = "5550001", amount: int = 8800, **kw: Any) -> PaymentRequest:
    values: dict[str, Any] = {
        "payment_id": f"P-{next(_ids):08d}",
        "account": account,
        "amount": amount,
        "currency": "944",
        "paid_at": datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        "channel": "ATM",
        "invoice": "INV-7822",
    }
    values.update(kw)
    return PaymentRequest(**values)
