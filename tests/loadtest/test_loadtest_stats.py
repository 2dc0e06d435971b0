"""Percentiles and the window rules of the recorder, on known data."""

from __future__ import annotations

import pytest

from loadtest.stats import Outcome, Recorder, Window, latency_summary, percentile


def test_percentile_nearest_rank_on_1_to_100() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100


def test_percentile_small_and_empty() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([0.004, 0.001, 0.003, 0.002])
    assert summary == {"count": 4, "p50": 2.0, "p95": 4.0, "p99": 4.0, "max": 4.0}


def test_recorder_counts_by_send_time_and_completion_time() -> None:
    recorder = Recorder(Window(10.0, 20.0))
    recorder.record(Outcome("inquiry", 9.0, 10.5, "ok", "00"))  # warm-up send, done inside
    recorder.record(Outcome("payment", 11.0, 11.25, "ok", "00"))
    recorder.record(Outcome("payment", 12.0, 12.5, "ok", "13"))
    recorder.record(Outcome("reversal", 19.5, 20.5, "ok", "00"))  # done after the window
    recorder.record(Outcome("payment", 13.0, 18.0, "timeout"))
    recorder.record(Outcome("payment", 14.0, 14.0, "lost"))
    summary = recorder.summary()
    assert summary["responses"] == 3
    assert summary["tps"] == 0.3
    assert summary["approved_payments"] == 1
    assert summary["sent"] == {"payment": 4, "reversal": 1}
    assert summary["response_codes"] == {"payment": {"00": 1, "13": 1}, "reversal": {"00": 1}}
    assert summary["timeouts"] == 1
    assert summary["errors"] == {"lost": 1}
    assert summary["latency_ms"]["count"] == 3
    assert summary["latency_ms"]["max"] == 1000.0
