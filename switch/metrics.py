"""Prometheus metrics of the switch, declared in one place."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

TRANSACTIONS = Counter(
    "billswitch_transactions_total", "Requests answered", ["channel", "mti", "code"]
)
LATENCY = Histogram(
    "billswitch_transaction_seconds",
    "Time from a decoded request to its encoded response",
    ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_SIZE = Histogram(
    "billswitch_ledger_batch_size",
    "Orders per ledger commit (group commit)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
SHED = Counter("billswitch_shed_total", "Requests refused with 91 because a queue was full")
LEDGER_QUEUE = Gauge("billswitch_ledger_queue", "Orders waiting for the ledger writer")
BUILD = Info("billswitch_build", "Version of the running switch and of its Python")
DEADLINE_MISSED = Counter(
    "billswitch_ledger_deadline_missed_total",
    "Orders answered 96 because their deadline passed before their commit began",
)
COMMITS_FOUND_OUT = Counter(
    "billswitch_ledger_failed_commits_total",
    "Failed COMMITs found out from the stored request rows, by what was found",
    ["landed"],
)
OUTBOX_ROWS = Gauge(
    "billswitch_outbox_rows",
    "Outbox rows not yet delivered to their online biller, by biller and state (pending, parked)",
    ["biller", "state"],
)
OUTBOX_OLDEST = Gauge(
    "billswitch_outbox_oldest_pending_seconds",
    "Age of the oldest pending outbox row, by biller",
    ["biller"],
)
OUTBOX_DELIVERIES = Counter(
    "billswitch_outbox_deliveries_total",
    "Delivery attempts of outbox rows, by biller and outcome (done, retry, parked)",
    ["biller", "outcome"],
)
