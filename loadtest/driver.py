"""The two ways of offering load: closed loop and fixed rate.

Closed loop (K requests outstanding per connection) finds the throughput the
server sustains, but hides its stalls: while the server is stuck, the
generator simply sends less. Fixed rate keeps sending on schedule whatever
the server does, and measures latency from the *scheduled* time, so a stall
costs every request that should have gone out during it (no coordinated
omission). Both stop issuing at ``end`` and return when the last reply is in.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.python.failure import Failure

from loadtest.client import ERROR, LOST, Reply, TerminalProtocol
from loadtest.traffic import Traffic


async def drive_closed(
    clock: Any, conns: list[TerminalProtocol], traffic: Traffic, concurrency: int, end: float
) -> None:
    """Keep ``concurrency`` requests in flight on every connection until ``end``."""
    workers = [
        Deferred.fromCoroutine(_loop(clock, conn, traffic, end))
        for conn in conns
        for _ in range(concurrency)
    ]
    await gatherResults(workers)


async def _loop(clock: Any, conn: TerminalProtocol, traffic: Traffic, end: float) -> None:
    """Send the next request when the previous one ends; a dead connection ends the loop."""
    while (now := clock.seconds()) < end:
        reply = await traffic.send(conn, now)
        if reply.status in (LOST, ERROR):
            return


async def drive_rate(
    clock: Any,
    conns: list[TerminalProtocol],
    traffic: Traffic,
    rate: float,
    start: float,
    end: float,
) -> None:
    """Offer ``rate`` requests/s in total, spread evenly over the connections."""
    interval = len(conns) / rate
    senders = [
        ScheduledSender(clock, conn, traffic, start + i / rate, interval, end)
        for i, conn in enumerate(conns)
    ]
    await gatherResults([sender.run() for sender in senders])


class ScheduledSender:
    """Sends on one connection at fixed times, catching up in bursts when late."""

    def __init__(
        self,
        clock: Any,
        conn: TerminalProtocol,
        traffic: Traffic,
        first: float,
        interval: float,
        end: float,
    ) -> None:
        self._clock = clock
        self._conn = conn
        self._traffic = traffic
        self._next = first
        self._interval = interval
        self._end = end
        self._in_flight = 0
        self._scheduling = True
        self._failure: Failure | None = None
        self._finished: Deferred[None] = Deferred()

    def run(self) -> Deferred[None]:
        """Start the schedule; fires when it has ended and every reply is in."""
        self._clock.callLater(max(0.0, self._next - self._clock.seconds()), self._tick)
        return self._finished

    def _tick(self) -> None:
        now = self._clock.seconds()
        while self._next <= now and self._next < self._end and self._conn.connected_now:
            self._launch(self._next)
            self._next += self._interval
        if self._next >= self._end or not self._conn.connected_now:
            self._scheduling = False
            self._maybe_finish()
            return
        self._clock.callLater(max(0.0, self._next - self._clock.seconds()), self._tick)

    def _launch(self, intended: float) -> None:
        self._in_flight += 1
        sent = Deferred.fromCoroutine(self._traffic.send(self._conn, intended))
        sent.addBoth(self._landed)

    def _landed(self, result: Reply | Failure) -> None:
        """Count the request done; a bug in send fails the run instead of hanging it."""
        self._in_flight -= 1
        if isinstance(result, Failure):
            self._failure = self._failure or result
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self._scheduling or self._in_flight or self._finished.called:
            return
        if self._failure is not None:
            self._finished.errback(self._failure)
        else:
            self._finished.callback(None)
