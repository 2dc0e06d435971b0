"""Prometheus metrics of the calls to billers, declared in one place."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BILLER_CALLS = Counter(
    "billswitch_biller_calls_total",
    "Calls to online billers by outcome (ok, not_found, a decline's error, unavailable, "
    "in_doubt, or circuit_open / busy when refused without a call)",
    ["biller", "operation", "outcome"],
)
BILLER_SECONDS = Histogram(
    "billswitch_biller_call_seconds",
    "Time from sending a call to a biller to its answer or failure",
    ["biller", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CIRCUIT_STATE = Gauge(
    "billswitch_biller_circuit_state",
    "Circuit breaker of each online biller: 0 closed, 1 half-open, 2 open",
    ["biller"],
)
