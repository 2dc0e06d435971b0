"""Answers held back and connections no longer read, per biller, until the faults change.

A ``hang`` fault holds an answer; ``stop_reading`` stalls a connection. When a
test changes the biller's faults (``release``), held answers go out (if their
client is still there) and stalled connections are cut, so nothing waits forever.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from twisted.internet.defer import Deferred

from routing.biller_sim.faults import FOREVER


class Holds:
    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._held: dict[str, list[Deferred[None]]] = defaultdict(list)
        self._stalled: dict[str, list[Any]] = defaultdict(list)

    def hold(self, code: str, seconds: float) -> Deferred[None]:
        """Fires after ``seconds`` (never, for FOREVER) or when the biller is released."""
        waiting: Deferred[None] = Deferred()
        self._held[code].append(waiting)
        if seconds != FOREVER:
            timer = self._reactor.callLater(seconds, _fire, waiting)
            waiting.addBoth(_cancel_timer, timer)
        waiting.addBoth(self._forget, code, waiting)
        return waiting

    def stall(self, code: str, channel: Any) -> None:
        """Stop reading ``channel``: its request is neither processed nor answered."""
        channel.rawDataReceived = lambda data: None  # the body already buffered is dropped
        channel.allContentReceived = lambda: None  # and a bodiless request never completes
        channel.transport.pauseProducing()  # nothing more is read from the socket
        self._stalled[code].append(channel)

    def release(self, code: str) -> None:
        for waiting in list(self._held.pop(code, [])):
            _fire(waiting)
        for channel in self._stalled.pop(code, []):
            channel.transport.abortConnection()

    def counts(self, code: str) -> dict[str, int]:
        return {"held": len(self._held.get(code, [])), "stalled": len(self._stalled.get(code, []))}

    def _forget(self, result: object, code: str, waiting: Deferred[None]) -> object:
        held = self._held.get(code, [])
        if waiting in held:
            held.remove(waiting)
        return result


def _fire(waiting: Deferred[None]) -> None:
    if not waiting.called:
        waiting.callback(None)


def _cancel_timer(result: object, timer: Any) -> object:
    if timer.active():
        timer.cancel()
    return result
