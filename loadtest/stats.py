"""Counting what happened inside the measurement window; pure, no I/O.

Two clocks matter. Latency, response codes, timeouts and errors belong to the
request's *intended* send time (in rate mode the scheduled time, so a stalled
generator or server shows up as latency instead of silently sending less:
coordinated omission). Throughput counts responses *completed* inside the
window, so work the server does after the window never inflates it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50, 95, 99)
OK = "ok"
TIMEOUT = "timeout"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for no values).

    Nearest rank always returns an observed value, which is what an operator
    expects to find in a trace when looking for "the p99 request".
    """
    if not sorted_values:
        return 0.0
    if not 0 < q <= 100:
        raise ValueError("percentile must be in (0, 100]")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[rank - 1]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds, plus the sample count."""
    ordered = sorted(latencies_s)
    summary: dict[str, float] = {"count": len(ordered)}
    for q in PERCENTILES:
        summary[f"p{q}"] = round(percentile(ordered, q) * 1000, 3)
    summary["max"] = round((ordered[-1] if ordered else 0.0) * 1000, 3)
    return summary


@dataclass(frozen=True)
class Window:
    """The measured interval [start, end) in reactor seconds; warm-up lies before it."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Outcome:
    """One finished request: what, when meant to be sent, when done, how it ended."""

    kind: str
    intended: float
    done: float
    status: str  # ok, timeout, lost (connection closed), error (could not send)
    code: str | None = None


@dataclass
class Recorder:
    """Accumulates outcomes; ``summary`` turns them into the reported figures."""

    window: Window
    latencies: list[float] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)
    codes: dict[str, Counter[str]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    responses: int = 0
    approved_payments: int = 0

    def record(self, outcome: Outcome) -> None:
        """Count one outcome under the clock each figure belongs to."""
        if outcome.intended in self.window:
            self._record_sent(outcome)
        if outcome.status == OK and outcome.done in self.window:
            self.responses += 1
            if outcome.kind == "payment" and outcome.code == "00":
                self.approved_payments += 1

    def _record_sent(self, outcome: Outcome) -> None:
        self.sent[outcome.kind] += 1
        if outcome.status == OK:
            self.latencies.append(outcome.done - outcome.intended)
            self.codes.setdefault(outcome.kind, Counter())[outcome.code or "--"] += 1
        elif outcome.status == TIMEOUT:
            self.timeouts += 1
        else:
            self.errors[outcome.status] += 1

    def summary(self) -> dict[str, Any]:
        """The figures of the run as plain data (printed and written as JSON)."""
        seconds = self.window.length
        return {
            "window_s": round(seconds, 3),
            "sent": dict(sorted(self.sent.items())),
            "responses": self.responses,
            "tps": _rate(self.responses, seconds),
            "approved_payments": self.approved_payments,
            "approved_payments_per_s": _rate(self.approved_payments, seconds),
            "latency_ms": latency_summary(self.latencies),
            "response_codes": {k: dict(sorted(c.items())) for k, c in sorted(self.codes.items())},
            "timeouts": self.timeouts,
            "errors": dict(sorted(self.errors.items())),
        }


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0
