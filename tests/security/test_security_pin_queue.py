"""One PIN check per card at a time on a node, in arrival order; other cards do not wait."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from switch.security.pin_queue import PinQueue


def test_checks_of_one_card_run_one_at_a_time_in_order_and_the_card_is_forgotten() -> None:
    queue = PinQueue()
    hsm: dict[str, Deferred[None]] = {}
    log: list[str] = []

    async def check(card: str, name: str) -> None:
        async with queue.turn(card):
            log.append(f"start {name}")
            hsm[name] = Deferred()
            await hsm[name]
            log.append(f"end {name}")

    runs = [Deferred.fromCoroutine(check("A", n)) for n in ("a1", "a2", "a3")]
    runs.append(Deferred.fromCoroutine(check("B", "b1")))
    assert log == ["start a1", "start b1"]  # another card does not wait
    hsm["a1"].callback(None)
    assert log[-2:] == ["end a1", "start a2"]
    hsm["a2"].errback(RuntimeError("HSM failed"))  # a failure hands the turn on too
    assert log[-1] == "start a3"
    hsm["a3"].callback(None)
    hsm["b1"].callback(None)
    assert all(run.called for run in runs)
    runs[1].addErrback(lambda failure: failure.trap(RuntimeError))
    assert queue._locks == {}  # no card is kept once no check waits for it
