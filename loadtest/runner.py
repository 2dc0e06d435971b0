"""The phases of one run: connect and sign on, learn debts, drive load, probe, close.

Every phase is bounded: connects and requests carry the run's timeout, the
load stops issuing at the end of the window, and draining waits at most one
timeout for the last replies. So a run always ends by itself, even against a
server that never answers.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, gatherResults, succeed
from twisted.internet.error import TimeoutError as TwistedTimeout

from iso.framing import PREFIXES
from loadtest import workload
from loadtest.budget import DebtBook
from loadtest.client import BAD_MAC, Framing, Reply, TerminalProtocol, WireCounters, connect
from loadtest.config import RunConfig
from loadtest.driver import drive_closed, drive_rate
from loadtest.identity import Counters, Identity, identities
from loadtest.ledger_check import LedgerFacts
from loadtest.limits import ensure_fd_limit
from loadtest.prebuild import BuildReport, build, expected_rate, pool_size
from loadtest.security import ResponseMacs
from loadtest.stats import OK, Recorder, Window
from loadtest.traffic import Traffic

PARALLEL_OPENS = 100  # connect+sign-on in flight at once: stays under listen backlogs
CLOSE_WAIT_S = 2.0


@dataclass
class RunState:
    """What the phases of one run share."""

    reactor: Any
    cfg: RunConfig
    rng: random.Random
    counters: Counters
    facts: LedgerFacts
    wire: WireCounters = field(default_factory=WireCounters)
    signon: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    macs: ResponseMacs | None = None  # response MACs of the load, checked after the window
    cpu: list[float] = field(default_factory=list)  # our process CPU time at window start, end


@dataclass
class RunResult:
    summary: dict[str, Any]
    facts: LedgerFacts

    @property
    def ok(self) -> bool:
        """At least one response counted: otherwise the figures mean nothing."""
        return self.summary["responses"] > 0


def new_state(reactor: Any, cfg: RunConfig) -> RunState:
    started = datetime.now(UTC)
    rng = random.Random(cfg.seed)
    ids = identities(cfg.channel, cfg.terminals)
    facts = LedgerFacts(started, ids[0].acquirer, {i.ledger_terminal for i in ids})
    facts.on_us = cfg.on_us is not None
    macs = ResponseMacs(cfg.mac_key) if cfg.mac_key is not None else None
    return RunState(reactor, cfg, rng, Counters(started, rng), facts, macs=macs)


class Gate:
    """Runs that measure together (``bench --dead-biller``): each waits here after its
    set-up (connections, discovery, prebuilding) until all have arrived, so their
    warm-ups and windows start at the same moment."""

    def __init__(self, parties: int) -> None:
        self._parties = parties
        self._waiting: list[Deferred[None]] = []

    def arrive(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        if len(self._waiting) >= self._parties:
            waiting, self._waiting = self._waiting, []
            for each in waiting:
                each.callback(None)
        return d


async def run_load(reactor: Any, cfg: RunConfig, gate: Gate | None = None) -> RunResult:
    """Run the whole workload once against ``cfg.host:cfg.port`` (with ``gate``: its
    measuring starts when the gate's other runs are ready too)."""
    cfg.validate()
    state = new_state(reactor, cfg)
    if warning := ensure_fd_limit(cfg.connections + cfg.idle_connections):
        state.notes.append(warning)
    conns = await open_connections(state, cfg.connections, first=0)
    active = [c for c in conns if c.signed_on]
    book, discovery = await discover_debts(state, active)
    idle = await open_connections(state, cfg.idle_connections, first=cfg.connections)
    recorder = Recorder(Window(0.0, 0.0))  # the real window starts after prebuilding
    traffic = Traffic(
        cfg.mix,
        book,
        state.counters,
        state.facts,
        recorder,
        reactor,
        state.rng,
        cfg.on_us_cards,
        cfg.biller,
    )
    built = _prebuild(state, traffic, active)
    if gate is not None:
        await gate.arrive()
    now = reactor.seconds()
    window = recorder.window = Window(now + cfg.warmup, now + cfg.warmup + cfg.duration)
    if active:
        readings = _clock_cpu(state, window)
        await _drive(state, active, traffic, window)
        for reading in readings:
            if reading.active():  # the load ended early (every connection lost)
                reading.cancel()
    else:
        state.notes.append("no connection signed on: nothing was measured")
    idle_report = await probe_idle(state, idle) if cfg.idle_connections else None
    await close_all(state, conns + idle)
    summary = _summary(state, recorder, traffic, discovery, idle_report, len(active))
    _add_prebuild(summary, built, traffic)
    _add_cpu(summary, state.cpu)
    if built is not None and state.macs is not None:
        _add_response_macs(summary, state.macs)
    return RunResult(summary, state.facts)


def _clock_cpu(state: RunState, window: Window) -> list[Any]:
    """Read our own CPU time as the window opens and closes: what the generator took
    from a box it shares with the server, and so what the figures may lack."""
    now = state.reactor.seconds()
    return [
        state.reactor.callLater(max(0.0, at - now), lambda: state.cpu.append(time.process_time()))
        for at in (window.start, window.end)
    ]


def _add_cpu(summary: dict[str, Any], cpu: list[float]) -> None:
    """``generator_cpu``: seconds, share of one core and per response, in the window."""
    if len(cpu) != 2:
        return
    used = cpu[1] - cpu[0]
    responses = summary["responses"]
    summary["generator_cpu"] = {
        "seconds": round(used, 3),
        "share": round(used / summary["window_s"], 3) if summary["window_s"] else None,
        "per_response_us": round(used / responses * 1e6, 1) if responses else None,
    }


def _prebuild(
    state: RunState, traffic: Traffic, active: list[TerminalProtocol]
) -> BuildReport | None:
    """Build the load's requests now, before the warm-up (see prebuild.py); None: on the fly."""
    count = pool_size(state.cfg, len(active))
    if not active or count == 0:
        return None
    ids = [conn.identity for conn in active]
    cfg = state.cfg
    ready, reversals, report = build(traffic, _framing(cfg), ids, count, expected_rate(cfg))
    traffic.use_prebuilt(ready, reversals)
    return report


def _add_prebuild(summary: dict[str, Any], built: BuildReport | None, traffic: Traffic) -> None:
    if built is None:
        return
    live = dict(traffic.built_live)
    summary["prebuilt"] = built.as_dict() | {"unsent": traffic.prebuilt_left, "built_live": live}
    if ran_out := live.get("after the prebuilt ran out"):
        summary["notes"].append(
            f"the {built.requests} prebuilt requests ran out: {ran_out} more were built while"
            " sending, which costs the generator CPU (raise --prebuild)"
        )


def _add_response_macs(summary: dict[str, Any], macs: ResponseMacs) -> None:
    """Verify the kept response MACs now that the load has stopped; a failure is an error."""
    failed_before = macs.failed  # no MAC field at all: already counted as bad_mac replies
    macs.verify()
    summary["response_macs"] = {"checked": macs.checked, "verified": macs.checked - macs.failed}
    late = macs.failed - failed_before
    if late:
        errors = summary["errors"]
        errors["bad_mac"] = errors.get("bad_mac", 0) + late
        summary["errors"] = dict(sorted(errors.items()))


async def _drive(
    state: RunState, active: list[TerminalProtocol], traffic: Traffic, window: Window
) -> None:
    cfg = state.cfg
    start = window.start - cfg.warmup
    if cfg.rate:
        await drive_rate(state.reactor, active, traffic, cfg.rate, start, window.end)
    else:
        await drive_closed(state.reactor, active, traffic, cfg.concurrency, window.end)


def _framing(cfg: RunConfig) -> Framing:
    return Framing(PREFIXES[cfg.framing], cfg.tpdu, mac_key=cfg.mac_key)


async def open_connections(state: RunState, count: int, first: int) -> list[TerminalProtocol]:
    """Open ``count`` signed-on-or-not connections, rotating over the terminal ids."""
    ids = identities(state.cfg.channel, state.cfg.terminals)
    chosen = [ids[(first + i) % len(ids)] for i in range(count)]
    gate = DeferredSemaphore(PARALLEL_OPENS)
    opened = await gatherResults([gate.run(_open_one, state, ident) for ident in chosen])
    return [conn for conn in opened if conn is not None]


def _open_one(state: RunState, identity: Identity) -> Deferred[TerminalProtocol | None]:
    return Deferred.fromCoroutine(_connect_and_sign_on(state, identity))


async def _connect_and_sign_on(state: RunState, identity: Identity) -> TerminalProtocol | None:
    cfg = state.cfg
    protocol = TerminalProtocol(
        identity, _framing(cfg), state.reactor, cfg.timeout, state.wire, state.macs
    )
    conn = await connect(state.reactor, cfg.host, cfg.port, protocol, cfg.timeout)
    if conn is None:
        return None
    reply = await _network_reply(state, conn, workload.SIGN_ON)
    conn.signed_on = _approved(reply)
    state.signon["ok" if conn.signed_on else _failure(reply)] += 1
    return conn


def _failure(reply: Reply) -> str:
    """Why a sign-on failed, as counted: a bad response MAC, or anything else."""
    return "bad_mac" if reply.status == BAD_MAC else "failed"


async def _network_reply(state: RunState, conn: TerminalProtocol, code: str) -> Reply:
    """0800 with DE 70 = ``code``."""
    stan = state.counters.stan(conn.identity)
    return await conn.request(workload.network(conn.identity, stan, workload.stamp_now(), code))


def _approved(reply: Reply) -> bool:
    return reply.status == OK and workload.response_code(reply.fields or {}) == workload.APPROVED


async def _network_request(state: RunState, conn: TerminalProtocol, code: str) -> bool:
    """0800 with DE 70 = ``code``; True when answered 00."""
    return _approved(await _network_reply(state, conn, code))


async def discover_debts(
    state: RunState, conns: list[TerminalProtocol]
) -> tuple[DebtBook, dict[str, Any]]:
    """Ask what each account owes, so payments stay within real debts (see budget.py)."""
    cfg = state.cfg
    unlimited = DebtBook(dict.fromkeys(cfg.accounts), cfg.max_amount, state.rng, cfg.min_amount)
    if not cfg.discover or not conns:
        return unlimited, {"enabled": False}
    dues: dict[str, int] = {}
    parts = [cfg.accounts[i :: len(conns)] for i in range(len(conns))]
    pairs = zip(conns, parts, strict=True)
    await gatherResults([Deferred.fromCoroutine(_inquire(state, c, p, dues)) for c, p in pairs])
    owed = {acc: due for acc, due in dues.items() if due > 0}
    report = {
        "enabled": True,
        "accounts": len(cfg.accounts),
        "owing": len(owed),
        "owed_total": sum(owed.values()),
    }
    if not owed:
        state.notes.append("no account owes money: payments are unbounded and may be declined")
        return unlimited, report
    budgets = {acc: dues.get(acc, 0) for acc in cfg.accounts}
    return DebtBook(budgets, cfg.max_amount, state.rng, cfg.min_amount), report


async def _inquire(
    state: RunState, conn: TerminalProtocol, accounts: list[str], dues: dict[str, int]
) -> None:
    for account in accounts:
        header = workload.Header(
            conn.identity,
            state.counters.stan(conn.identity),
            workload.stamp_now(),
            state.counters.rrn.next(),
        )
        reply = await conn.request(workload.inquiry(header, account, state.cfg.biller))
        due = workload.amount_due(reply.fields) if reply.fields else None
        if reply.status == OK and due is not None:
            dues[account] = due


async def probe_idle(state: RunState, idle: list[TerminalProtocol]) -> dict[str, int]:
    """Echo-test the held connections: still there, and still accepted as signed on?"""
    alive = [conn for conn in idle if conn.connected_now]
    gate = DeferredSemaphore(PARALLEL_OPENS)
    answers = await gatherResults([gate.run(_echo_test, state, conn) for conn in alive])
    return {
        "requested": state.cfg.idle_connections,
        "opened": len(idle),
        "signed_on": sum(conn.signed_on for conn in idle),
        "connected_at_end": len(alive),
        "signed_on_at_end": sum(answers),
    }


def _echo_test(state: RunState, conn: TerminalProtocol) -> Deferred[bool]:
    if not conn.signed_on:
        return succeed(False)
    return Deferred.fromCoroutine(_network_request(state, conn, workload.ECHO_TEST))


async def close_all(state: RunState, conns: list[TerminalProtocol]) -> None:
    """Hang up cleanly and wait briefly, so the server sees FINs, not resets."""
    waiting = [conn.closed for conn in conns if conn.connected_now]
    for conn in conns:
        conn.close()
    if not waiting:
        return
    closing = DeferredList(waiting, consumeErrors=True)
    closing.addTimeout(CLOSE_WAIT_S, state.reactor)
    try:
        await closing
    except TwistedTimeout:
        state.notes.append("some connections did not close in time")


def _summary(
    state: RunState,
    recorder: Recorder,
    traffic: Traffic,
    discovery: dict[str, Any],
    idle: dict[str, int] | None,
    signed_on: int,
) -> dict[str, Any]:
    cfg = state.cfg
    summary: dict[str, Any] = {
        "target": f"{cfg.host}:{cfg.port}",
        "channel": cfg.channel,
        "mode": cfg.mode,
        "connections": cfg.connections,
        "signed_on": signed_on,
        "concurrency": cfg.concurrency if cfg.mode == "closed" else None,
        "rate": cfg.rate,
        "warmup_s": cfg.warmup,
        "mac": cfg.mac_key is not None,
        "on_us": cfg.on_us is not None,
        "cards": len(cfg.on_us_cards),
    }
    summary |= recorder.summary()
    summary["errors"] = _errors(recorder, state)
    summary["fallbacks"] = dict(traffic.fallbacks)
    summary["discovery"] = discovery
    if idle is not None:
        summary["idle"] = idle
    summary["notes"] = state.notes + _card_notes(cfg, summary["response_codes"])
    return summary


def _card_notes(cfg: RunConfig, codes: dict[str, dict[str, int]]) -> list[str]:
    """Explain the on-us declines an operator would otherwise puzzle over."""
    paid = codes.get("payment", {}) if cfg.on_us else {}
    notes = {
        "05": "on-us payments got 05: the switch does not know a card (bench registers"
        " the --on-us card and its --cards under its own home's hash key, see --home)",
        "51": "on-us payments got 51: the wallet has run dry",
    }
    return [note for code, note in notes.items() if code in paid]


def _errors(recorder: Recorder, state: RunState) -> dict[str, int]:
    """Request-level errors of the window plus wire-level problems of the whole run."""
    errors = Counter(recorder.errors)
    errors["connect_failed"] += state.wire.connect_failed
    errors["signon_failed"] += state.signon["failed"]
    errors["signon_bad_mac"] += state.signon["bad_mac"]
    errors["undecodable"] += state.wire.undecodable
    errors["unmatched"] += state.wire.unmatched
    return {kind: n for kind, n in sorted(errors.items()) if n}
