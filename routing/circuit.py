"""A circuit breaker: a dead biller costs an immediate refusal, not a timeout per call.

Closed, calls pass and their outcomes are counted. Enough failures in a row,
or too large a share of failures among the last calls, open it: calls are then
refused without touching the network for ``open_for`` seconds. After that it is
half-open: exactly one call (the probe) is let through; its success closes the
circuit, its failure opens it again for another ``open_for``.

Only the biller's health counts as failure (no answer, 5xx, garbage): a business
decline is an answer from a live biller and counts as success. Time comes from
an ``IReactorTime`` so tests drive it with ``twisted.internet.task.Clock``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from twisted.internet.interfaces import IReactorTime


class State(IntEnum):
    """The circuit's state; the number is the value of its Prometheus gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class Thresholds:
    """When a circuit opens and for how long (data, one set per adapter or per biller)."""

    failures: int = 5  # consecutive failures that open the circuit
    ratio: float = 0.5  # or this share of failures ...
    window: int = 20  # ... among the last ``window`` calls (only once that many were made)
    open_for: float = 5.0  # seconds refused before a probe is let through


DEFAULT = Thresholds()


class Circuit:
    """One biller's circuit breaker."""

    def __init__(
        self,
        clock: IReactorTime,
        thresholds: Thresholds = DEFAULT,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self._clock = clock
        self._limits = thresholds
        self._on_change = on_change
        self._state = State.CLOSED
        self._in_a_row = 0
        self._recent: deque[bool] = deque(maxlen=thresholds.window)  # True = failed
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        """The state as of now (an open circuit whose time is up reads half-open)."""
        if self._state is State.OPEN and self._time_is_up():
            return State.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; a True in half-open state makes it the probe,
        and its outcome must then be reported (``succeeded`` or ``failed``)."""
        if self._state is State.CLOSED:
            return True
        if self._state is State.OPEN:
            if not self._time_is_up():
                return False
            self._enter(State.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        """A call got an answer from a live biller."""
        self._in_a_row = 0
        self._recent.append(False)
        if self._state is not State.CLOSED:
            self._probing = False
            self._recent.clear()
            self._enter(State.CLOSED)

    def failed(self) -> None:
        """A call found the biller dead or broken."""
        if self._state is not State.CLOSED:
            self._probing = False
            self._open()
            return
        self._in_a_row += 1
        self._recent.append(True)
        if self._in_a_row >= self._limits.failures or self._too_many_recent():
            self._open()

    def _too_many_recent(self) -> bool:
        recent = self._recent
        return len(recent) == recent.maxlen and sum(recent) >= self._limits.ratio * len(recent)

    def _open(self) -> None:
        self._opened_at = self._clock.seconds()
        self._in_a_row = 0
        self._recent.clear()
        self._enter(State.OPEN)

    def _time_is_up(self) -> bool:
        return self._clock.seconds() >= self._opened_at + self._limits.open_for

    def _enter(self, state: State) -> None:
        changed = state is not self._state
        self._state = state
        if changed and self._on_change is not None:
            self._on_change(state)
