"""The node's PIN-try asks batched one transaction at a time (switch/security/tries.py).

``run`` stands in for the read pool: each call is held until the test answers it,
so what queues while a transaction is out can be seen.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from switch.errors import SystemFailure
from switch.security.tries import BUSY, RESERVE, RIGHT, WRONG, PinTries


class HeldRuns:
    def __init__(self) -> None:
        self.calls: list[tuple[list[tuple[str, str]], Deferred[list[Any]]]] = []

    def __call__(self, _work: Any, asks: list[tuple[str, str]], *_args: Any) -> Deferred:
        d: Deferred[list[Any]] = Deferred()
        self.calls.append((asks, d))
        return d


def _tries(runs: HeldRuns, clock: Clock) -> PinTries:
    return PinTries(runs, clock.callLater, limit=3, hold=60, wait=0.005)


def _results(d: Deferred) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_asks_made_while_a_transaction_is_out_go_together_in_the_next() -> None:
    runs, clock = HeldRuns(), Clock()
    tries = _tries(runs, clock)
    far = time.monotonic() + 60
    first = _results(tries.reserve("a", far))
    later = [_results(tries.reserve(card, far)) for card in ("b", "c")]
    wrong = _results(tries.count_wrong("d"))
    assert [asks for asks, _ in runs.calls] == [[(RESERVE, "a")]]
    runs.calls[0][1].callback([True])
    assert first == [True]
    assert [asks for asks, _ in runs.calls][1] == [(RESERVE, "b"), (RESERVE, "c"), (WRONG, "d")]
    runs.calls[1][1].callback([True, False, 2])
    assert later == [[True], [False]] and wrong == [2]


def test_a_busy_card_is_asked_again_until_a_try_comes_back() -> None:
    runs, clock = HeldRuns(), Clock()
    tries = _tries(runs, clock)
    answer = _results(tries.reserve("a", time.monotonic() + 60))
    runs.calls[0][1].callback([BUSY])
    assert answer == [] and len(runs.calls) == 1
    clock.advance(0.005)  # nothing else came: asked again after the wait
    assert runs.calls[1][0] == [(RESERVE, "a")]
    release = _results(tries.count_right("a"))  # another request's right PIN, meanwhile
    runs.calls[1][1].callback([BUSY])
    assert runs.calls[2][0] == [(RESERVE, "a"), (RIGHT, "a")]  # at once, with it
    runs.calls[2][1].callback([True, None])
    assert answer == [True] and release == [None]


def test_a_busy_card_past_the_deadline_is_96() -> None:
    runs, clock = HeldRuns(), Clock()
    tries = _tries(runs, clock)
    answer = _results(tries.reserve("a", time.monotonic() + 0.001))
    runs.calls[0][1].callback([BUSY])
    time.sleep(0.002)
    clock.advance(0.005)
    assert len(runs.calls) == 1
    assert isinstance(answer[0].value, SystemFailure) and answer[0].value.code == "96"


def test_a_failed_transaction_fails_its_asks_and_the_next_goes_on() -> None:
    runs, clock = HeldRuns(), Clock()
    tries = _tries(runs, clock)
    first = _results(tries.reserve("a", time.monotonic() + 60))
    second = _results(tries.reserve("b", time.monotonic() + 60))
    runs.calls[0][1].errback(SystemFailure("database gone"))
    assert isinstance(first[0].value, SystemFailure)
    assert runs.calls[1][0] == [(RESERVE, "b")]
    runs.calls[1][1].callback([True])
    assert second == [True]
