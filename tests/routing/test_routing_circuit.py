"""The circuit breaker on a test clock: when it opens, how long it refuses, the single
probe of half-open, and that it closes by itself."""

from __future__ import annotations

from twisted.internet.task import Clock

from routing.circuit import Circuit, State, Thresholds

LIMITS = Thresholds(failures=3, ratio=0.5, window=10, open_for=10.0)


def _circuit(limits: Thresholds = LIMITS) -> tuple[Circuit, Clock, list[State]]:
    clock = Clock()
    changes: list[State] = []
    return Circuit(clock, limits, changes.append), clock, changes


def _fail(circuit: Circuit, times: int) -> None:
    for _ in range(times):
        assert circuit.allow()
        circuit.failed()


def test_opens_after_consecutive_failures_and_refuses_while_open() -> None:
    circuit, clock, changes = _circuit()
    _fail(circuit, 2)
    assert circuit.state is State.CLOSED
    _fail(circuit, 1)
    assert circuit.state is State.OPEN and changes == [State.OPEN]
    clock.advance(9.9)
    assert not circuit.allow()


def test_a_success_resets_the_consecutive_count() -> None:
    circuit, _, _ = _circuit(Thresholds(failures=3, ratio=1.0, window=10, open_for=10.0))
    for _ in range(4):
        _fail(circuit, 2)
        assert circuit.allow()
        circuit.succeeded()
    assert circuit.state is State.CLOSED


def test_opens_on_the_failure_ratio_over_the_window() -> None:
    """Never three in a row, but half of the last ten failed."""
    circuit, _, _ = _circuit()
    for n in range(9):
        assert circuit.allow()
        circuit.failed() if n % 2 else circuit.succeeded()
    assert circuit.state is State.CLOSED  # 4 of 9: the window is not full yet
    _fail(circuit, 1)
    assert circuit.state is State.OPEN  # 5 of 10


def test_half_open_lets_one_probe_through_and_its_success_closes() -> None:
    circuit, clock, changes = _circuit()
    _fail(circuit, 3)
    clock.advance(10.0)
    assert circuit.state is State.HALF_OPEN
    assert circuit.allow()  # the probe
    assert not circuit.allow()  # nobody else while it is out
    circuit.succeeded()
    assert circuit.state is State.CLOSED
    assert changes == [State.OPEN, State.HALF_OPEN, State.CLOSED]
    assert circuit.allow() and circuit.allow()


def test_a_failed_probe_opens_again_for_the_full_time() -> None:
    circuit, clock, _ = _circuit()
    _fail(circuit, 3)
    clock.advance(10.0)
    assert circuit.allow()
    circuit.failed()
    assert circuit.state is State.OPEN
    clock.advance(9.9)
    assert not circuit.allow()
    clock.advance(0.1)
    assert circuit.allow()


def test_after_closing_it_counts_from_zero() -> None:
    circuit, clock, _ = _circuit()
    _fail(circuit, 3)
    clock.advance(10.0)
    assert circuit.allow()
    circuit.succeeded()
    _fail(circuit, 2)
    assert circuit.state is State.CLOSED
