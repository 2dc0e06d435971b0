"""Turning a run summary into the text an operator reads and the JSON a script reads.

Both come from the same dict (``runner.RunResult.summary``), so the printed
figures and the ``--json`` file can never disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The end-of-run report."""
    lines = [_target_line(summary)]
    if security := _security(summary):
        lines.append(f"security   {security}")
    lines.append(f"window     {summary['window_s']:.1f} s after {summary['warmup_s']:.1f} s warmup")
    lines.append(f"responses  {summary['responses']}  ({summary['tps']:.1f}/s)")
    lines.append(
        f"approved payments  {summary['approved_payments']}"
        f"  ({summary['approved_payments_per_s']:.1f}/s)"
    )
    lines.append(_latency_line(summary["latency_ms"]))
    lines += _codes_lines(summary["response_codes"])
    lines.append(f"timeouts   {summary['timeouts']}")
    errors = summary["errors"]
    detail = f"  ({_breakdown(errors)})" if errors else ""
    lines.append(f"errors     {sum(errors.values())}{detail}")
    if summary["fallbacks"]:
        lines.append(f"fallbacks  {_breakdown(summary['fallbacks'])}")
    if "generator_cpu" in summary:
        lines.append(_cpu_line(summary["generator_cpu"], summary["window_s"]))
    if "response_macs" in summary:
        lines.append(_macs_line(summary["response_macs"]))
    if "prebuilt" in summary:
        lines.append(_prebuilt_line(summary["prebuilt"]))
    if "idle" in summary:
        lines.append(_idle_line(summary["idle"]))
    lines += [f"note: {note}" for note in summary["notes"]]
    return lines


def _target_line(s: dict[str, Any]) -> str:
    how = f"rate {s['rate']:g}/s" if s["mode"] == "rate" else f"closed loop x{s['concurrency']}"
    return (
        f"target     {s['target']}  {s['channel']}, {s['signed_on']}/{s['connections']}"
        f" connections signed on, {how}"
    )


def _security(s: dict[str, Any]) -> str:
    parts = ["X9.19 MAC on every message"] if s.get("mac") else []
    if s.get("on_us"):
        cards = s.get("cards", 1)
        parts.append("on-us card payments with PIN" + (f" over {cards} cards" if cards > 1 else ""))
    return ", ".join(parts)


def _cpu_line(cpu: dict[str, Any], window_s: float) -> str:
    share = f"{cpu['share'] * 100:.0f} % of a core" if cpu["share"] is not None else "-"
    each = f", {cpu['per_response_us']:.0f} us per response" if cpu["per_response_us"] else ""
    return f"generator  CPU {cpu['seconds']:.2f} s in the {window_s:.1f} s window ({share}{each})"


def _macs_line(macs: dict[str, int]) -> str:
    """Response MACs of the load, checked after the window: every one must verify."""
    verdict = "" if macs["verified"] == macs["checked"] else "  FAILED"
    return f"response MACs verified: {macs['verified']} of {macs['checked']}{verdict}"


def _prebuilt_line(built: dict[str, Any]) -> str:
    live = ", ".join(f"{what} {n}" for what, n in built["built_live"].items()) or "none"
    return (
        f"prebuilt   {built['requests']} requests (+{built['reversals']} reversals) in"
        f" {built['seconds']:.1f} s before the warm-up, {built['unsent']} unsent;"
        f" built while sending: {live}"
    )


def _latency_line(latency: dict[str, float]) -> str:
    return (
        f"latency ms p50 {latency['p50']:.2f}  p95 {latency['p95']:.2f}"
        f"  p99 {latency['p99']:.2f}  max {latency['max']:.2f}  (n={int(latency['count'])})"
    )


def _codes_lines(codes: dict[str, dict[str, int]]) -> list[str]:
    """One line per message kind: ``payment   00:812  13:4``."""
    lines = ["response codes"]
    for kind, counts in codes.items():
        lines.append(f"  {kind:<9}" + "  ".join(f"{code}:{n}" for code, n in counts.items()))
    return lines


def _breakdown(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def _idle_line(idle: dict[str, int]) -> str:
    return (
        f"idle       {idle['requested']} requested, {idle['signed_on']} signed on,"
        f" {idle['connected_at_end']} connected and {idle['signed_on_at_end']}"
        " answering echo 00 at the end"
    )


def authentic(summary: dict[str, Any]) -> bool:
    """No response (sign-ons and warm-up included) had a missing or wrong MAC."""
    errors = summary["errors"]
    macs = summary.get("response_macs", {"checked": 0, "verified": 0})
    bad = errors.get("bad_mac", 0) + errors.get("signon_bad_mac", 0)
    return not bad and macs["verified"] == macs["checked"]


def ratio(switch: dict[str, Any], echo: dict[str, Any]) -> float | None:
    """The switch's responses/s as a fraction of the bare echo server's."""
    return round(switch["tps"] / echo["tps"], 3) if echo["tps"] else None


def compare_lines(echo: dict[str, Any], switch: dict[str, Any]) -> list[str]:
    """Both reports, then the ratio that makes them comparable across machines."""
    value = ratio(switch, echo)
    shown = f"{value:.3f}" if value is not None else "n/a (echo answered nothing)"
    return (
        ["== echo baseline"]
        + summary_lines(echo)
        + ["", "== switch"]
        + summary_lines(switch)
        + ["", f"switch/echo responses per second: {shown}"]
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
