"""``bench --biller-sim --dead-biller CODE --rate N``: a dead biller beside live ones.

Issue 11 asks that a dead biller answer its terminals in under 5 ms p99 once its
circuit is open, while other billers' payments keep their rate. Measured with the
live billers closed loop at full speed, the reactor is saturated and every answer,
a refusal too, queues behind their work: the figure then measures the queue, not the
refusal. So here the live billers' payments (the bench's own workload, ``--biller``)
run OPEN LOOP at a fixed ``--rate``, to be chosen well below the switch's capacity,
while a second stream pays the dead biller at ``--dead-rate`` from terminals of its
own. The dead biller's server answers 503 to everything, so the switch's circuit
opens during the warm-up (5 failures in a row) and refuses without the network from
then on, but for a probe every few seconds (which fails too). Both streams start
their warm-up and window together (``runner.Gate``) and are reported apart: each its
p50/p99, the live stream its achieved rate against the offered one. The box's load
average is printed with them: on a shared box every answer also waits for a core.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from loadtest import report
from loadtest.config import RunConfig, parse_accounts, parse_mix
from loadtest.identity import identities
from loadtest.runner import Gate, RunResult, run_load

DEFAULT_RATE = 50.0  # the dead stream's requests/s
FAULT = {"error": 503}  # the dead biller's server refuses everything (the faults API)
ACCOUNTS = "5550001-5550050"  # TEL01's demo accounts; PWR01 takes any
AMOUNT = 100  # within every demo online biller's limits
CONNECTIONS = 2


class DeadBillerUsage(ValueError):
    """Settings a dead-biller run cannot work with."""


def split(
    live: RunConfig, code: str, rate: float, dead_terminals: tuple[str, ...] | None
) -> tuple[RunConfig, RunConfig]:
    """The live stream's and the dead stream's settings: the dead one pays ``code`` at
    ``rate`` from ``dead_terminals`` (default: the channel's last terminal, which the live
    stream then leaves out); the two never share a terminal (nor so a STAN)."""
    if live.rate is None:
        raise DeadBillerUsage(
            "--dead-biller needs --rate: the live billers' payments run open loop at a"
            " fixed rate well below capacity, or every answer queues behind them"
        )
    if live.channel == "host":
        raise DeadBillerUsage("--dead-biller needs a terminal channel (atm or pos)")
    if live.mac_key is not None:
        raise DeadBillerUsage(
            "--dead-biller cannot MAC: only ATM00001 has demo keys, and each stream needs"
            " terminals of its own"
        )
    if code == live.biller:
        raise DeadBillerUsage(f"--dead-biller {code} is the live stream's --biller too")
    every = [i.terminal for i in identities(live.channel) if i.terminal]
    dead = dead_terminals or (every[-1],)
    live_terminals = live.terminals or tuple(t for t in every if t not in dead)
    if not live_terminals or set(live_terminals) & set(dead):
        raise DeadBillerUsage("the live and the dead stream need terminals of their own")
    dead_cfg = replace(
        live,
        biller=code,
        mix=parse_mix("payment=100"),
        accounts=parse_accounts(ACCOUNTS),
        discover=False,
        rate=rate,
        connections=CONNECTIONS,
        terminals=tuple(dead),
        min_amount=AMOUNT,
        max_amount=AMOUNT,
        on_us=None,
        cards=(),
        idle_connections=0,
        prebuild=None,
    )
    return replace(live, terminals=tuple(live_terminals)), dead_cfg


def run_both(live: RunConfig, dead: RunConfig) -> Any:
    """A coroutine for ``run_in_reactor``: both streams, measured over the same window."""

    async def both(reactor: Any) -> tuple[RunResult, RunResult]:
        gate = Gate(2)
        runs = [Deferred.fromCoroutine(run_load(reactor, cfg, gate)) for cfg in (live, dead)]
        live_run, dead_run = await gatherResults(runs)
        return live_run, dead_run

    return both


def outcome(
    live_cfg: RunConfig, code: str, live: RunResult, dead: RunResult, load: tuple[float, float]
) -> tuple[dict[str, Any], list[str]]:
    """The JSON output and the printed lines of a dead-biller run."""
    output = {
        "switch": live.summary,
        "dead": dead.summary,
        "live_biller": live_cfg.biller,
        "dead_biller": code,
        "load_average": {"start": load[0], "end": load[1], "cores": os.cpu_count()},
    }
    lines = ["== live billers (open loop) =="] + report.summary_lines(live.summary)
    lines += [f"== dead biller {code} (its server answers 503; circuit open) =="]
    lines += report.summary_lines(dead.summary)
    lines += ["== dead biller run =="]
    lines += figures(live_cfg.biller, code, live.summary, dead.summary, load)
    return output, lines


def figures(
    live_code: str,
    code: str,
    live: dict[str, Any],
    dead: dict[str, Any],
    load: tuple[float, float],
) -> list[str]:
    """The few numbers the run is for, one stream a line."""

    def latency(s: dict[str, Any]) -> str:
        ms = s["latency_ms"]
        return f"p50 {ms.get('p50', 0):.2f} ms, p99 {ms.get('p99', 0):.2f} ms"

    codes = dead["response_codes"].get("payment", {})
    return [
        f"live {live_code}: offered {live['rate']:g}/s, answered {live['tps']:.1f}/s,"
        f" approved {live['approved_payments_per_s']:.1f}/s; {latency(live)}",
        f"dead {code}: offered {dead['rate']:g}/s, answered {dead['tps']:.1f}/s"
        f" ({', '.join(f'{c}: {n}' for c, n in sorted(codes.items()))}); {latency(dead)}",
        f"box load average {load[0]:.1f} at start, {load[1]:.1f} at end, on"
        f" {os.cpu_count()} cores (above the cores, every answer also waits for one)",
    ]
