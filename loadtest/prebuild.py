"""Requests built before the window, so the window measures the server, not our encoder.

Building a request (encode, PIN block, X9.19 MAC, frame) costs the generator
about as much CPU as answering it costs an echo server; on a two-core box
that CPU is taken from the switch under test. So before the warm-up the run
builds what it expects to send, per terminal, ready to write: in the window
the generator only writes bytes and matches answers. A reversal points at
an approved payment, known only when sent, and the oldest is reversed
first; so each terminal's first payments get their reversals prebuilt
(as many as the mix asks for, plus a margin) and any other reversal is
built when sent. If the prebuilt requests run out, the rest are built on the
fly and the report says so.

How many: rate mode knows (rate x (warm-up + duration), plus a margin);
closed loop does not, so it assumes ``CLOSED_LOOP_RATE``, about what the
generator reaches against the echo server, capped at ``POOL_CAP`` to bound
memory (about 500 bytes each) and build time (about 0.1 ms each, MACed).
``compare``/``bench`` size the switch's run from the echo run's rate instead
(``size_after_echo``): the switch does not answer faster than the bare echo
server. ``--prebuild N`` sets the number, 0 builds everything on the fly (as
before).

DE 7/12/13 are stamped with the time each request is expected to be sent
(build end + its place in the queue at the expected rate), so they are
seconds, not the whole run, off the real send time.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from iso.errors import IsoFormatError
from loadtest import workload
from loadtest.client import Framing
from loadtest.config import RunConfig
from loadtest.identity import Identity
from loadtest.traffic import Planned, Traffic

CLOSED_LOOP_RATE = 12_000.0  # requests/s a closed-loop pool is sized for (above our echo ceiling)
RATE_MARGIN = 1.1  # rate mode: the schedule, plus catching up after stalls
POOL_CAP = 200_000  # auto sizing never builds more (memory, build time)
ECHO_MARGIN = 1.25  # compare: the switch's run is sized from the echo run's rate, plus this
REVERSAL_MARGIN = 1.2  # prebuilt reversals per reversal asked for: some payments are declined


def pool_size(cfg: RunConfig, connections: int) -> int:
    """How many requests to prebuild for a run over ``connections`` loaded connections."""
    if cfg.prebuild is not None:
        return cfg.prebuild
    seconds = cfg.warmup + cfg.duration
    expected = cfg.rate * RATE_MARGIN if cfg.rate else CLOSED_LOOP_RATE
    in_flight = connections * (1 if cfg.rate else cfg.concurrency)
    return min(POOL_CAP, math.ceil(round(expected * seconds, 6)) + in_flight)


def size_after_echo(cfg: RunConfig, echo_tps: float) -> int | None:
    """The prebuild for the switch's run of a compare: the echo run's rate, plus a margin.

    Only replaces the closed-loop guess; an explicit ``--prebuild`` or a fixed
    rate is kept (None).
    """
    if cfg.prebuild is not None or cfg.rate or echo_tps <= 0:
        return cfg.prebuild
    guess = math.ceil(echo_tps * ECHO_MARGIN * (cfg.warmup + cfg.duration))
    return min(POOL_CAP, guess + cfg.connections * cfg.concurrency)


def expected_rate(cfg: RunConfig) -> float:
    """Requests/s the stamps assume."""
    return cfg.rate or CLOSED_LOOP_RATE


@dataclass(frozen=True)
class BuildReport:
    """What prebuilding did, for the summary."""

    requests: int
    reversals: int  # prebuilt reversals of the first payments, sent only if asked for
    seconds: float
    unframed: int  # could not be encoded: sent (and failed) the ordinary way

    def as_dict(self) -> dict[str, float | int]:
        report: dict[str, float | int] = {
            "requests": self.requests,
            "reversals": self.reversals,
            "seconds": round(self.seconds, 3),
        }
        if self.unframed:
            report["unframed"] = self.unframed
        return report


class Stamper:
    """DE 7/12/13 at each request's expected send time, formatted once per second."""

    def __init__(self, count: int, rate: float) -> None:
        self._count = count
        self._rate = rate
        self._started = time.monotonic()
        self._utc0 = datetime.now(UTC)
        self._cache: dict[int, workload.Stamp] = {}

    def stamp(self, index: int) -> workload.Stamp:
        """The stamp of the ``index``-th request: the build's projected end + its queue place."""
        spent = time.monotonic() - self._started
        left = spent / index * (self._count - index) if index else 0.0
        second = math.floor(spent + left + index / self._rate)
        found = self._cache.get(second)
        if found is None:
            utc = self._utc0 + timedelta(seconds=second)
            found = self._cache[second] = workload.stamp_at(utc, utc.astimezone())
        return found


def build(
    traffic: Traffic, framing: Framing, identities: list[Identity], count: int, rate: float
) -> tuple[dict[str, deque[Planned]], dict[str, Planned], BuildReport]:
    """``count`` requests spread over the terminals as their connections are.

    ``identities`` holds one entry per loaded connection, so a terminal with
    more connections gets more requests. Terminals are interleaved, so a
    small debt book is shared out evenly.
    """
    started = time.monotonic()
    shares = Counter(identities)
    targets = {ident: math.ceil(count * n / len(identities)) for ident, n in shares.items()}
    ready: dict[str, deque[Planned]] = {ident.key: deque() for ident in targets}
    stamper = Stamper(count, rate)
    unframed = built = 0
    while built < count:
        for ident, target in targets.items():
            queue = ready[ident.key]
            if len(queue) >= target or built >= count:
                continue
            planned = traffic.plan(ident, stamper.stamp(built), prebuilt=True)
            framed = _framed(planned, framing)
            unframed += framed.fields is not None
            queue.append(framed)
            built += 1
    reversals: dict[str, Planned] = {}
    for queue in ready.values():
        reversals |= _reversals(traffic, framing, queue)
    seconds = time.monotonic() - started
    return ready, reversals, BuildReport(built, len(reversals), seconds, unframed)


def _reversals(traffic: Traffic, framing: Framing, queue: deque[Planned]) -> dict[str, Planned]:
    """Reversals of one terminal's first payments, by payment RRN, as many as it will ask for.

    Each is stamped like its payment: never earlier, and about when it is sent.
    """
    wanted = math.ceil(REVERSAL_MARGIN * sum(p.kind == "reversal" for p in queue))
    payments = (p for p in queue if p.kind == "payment")
    found: dict[str, Planned] = {}
    for payment, _ in zip(payments, range(wanted), strict=False):
        reversal = _framed(traffic.reversal_of(payment, payment.header.stamp), framing)
        if reversal.frame is not None:
            found[payment.header.rrn] = reversal
    return found


def _framed(planned: Planned, framing: Framing) -> Planned:
    """The request with its frame and match key instead of its fields."""
    if planned.fields is None:
        return planned  # a reversal placeholder
    try:
        frame = framing.frame(planned.fields)
    except IsoFormatError:
        return planned  # sent through ``request``, which reports it as an error
    return replace(planned, fields=None, frame=frame, key=workload.match_key(planned.fields))
