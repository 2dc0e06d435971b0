"""Faults a test switches on per biller, at start (``--fault``) or while running (/_control).

A request to a faulty biller meets its faults in this order:

1. ``stop_reading``: the server stops reading the connection once the request's
   headers are in; the request is never processed or answered (until the fault
   is changed, when such connections are cut).
2. ``delay``: seconds before the request is processed (a slow biller). A request
   whose connection closes during the delay is dropped unprocessed.
3. ``error``: answer this 5xx status; nothing is processed.
4. ``decline``: answer this refusal (amount_not_accepted, account_closed,
   unknown_account); nothing is processed.
5. the request is processed (a payment committed), then
6. ``hang``: the answer is held this many seconds (-1: until the fault is
   changed or the client goes): the biller accepted, the answer never came.
7. ``corrupt``: the answer is spoilt: ``bad_signature``, ``not_json``, ``html``
   (a 200 text/html page), ``wrong_types`` (every value wrapped in a list,
   correctly signed) or ``cut_body`` (headers and half the body, then held as
   ``hang: -1``).

``ops`` limits the faults to some operations (fetch, pay, reverse, status;
all by default) and ``count`` to the next N requests that meet them, after
which the biller's faults clear by themselves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from routing.biller_sim.errors import DECLINES

OPS = ("fetch", "pay", "reverse", "status")
CORRUPTIONS = ("bad_signature", "not_json", "html", "wrong_types", "cut_body")
FOREVER = -1.0


@dataclass(frozen=True)
class Faults:
    """One biller's faults; all off by default."""

    delay: float = 0.0
    error: int | None = None
    decline: str | None = None
    hang: float = 0.0
    stop_reading: bool = False
    corrupt: str | None = None
    ops: tuple[str, ...] = OPS
    count: int | None = None

    @classmethod
    def from_json(cls, data: object) -> Faults:
        """Faults from a JSON object; ValueError naming the field that is wrong."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        made = cls(**{**asdict(cls()), **data})
        made._check()
        return replace(made, ops=tuple(made.ops))

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"ops": list(self.ops)}

    def applies_to(self, op: str) -> bool:
        return op in self.ops and self != Faults(ops=self.ops, count=self.count)

    def _check(self) -> None:
        for name, ok in _CHECKS.items():
            if not ok(getattr(self, name)):
                raise ValueError(f"{name}: {_RULES[name]}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS = {
    "delay": lambda v: _number(v) and v >= 0,
    "error": lambda v: v is None or (_integer(v) and 500 <= v <= 599),
    "decline": lambda v: v is None or v in DECLINES,
    "hang": lambda v: _number(v) and (v >= 0 or v == FOREVER),
    "stop_reading": lambda v: isinstance(v, bool),
    "corrupt": lambda v: v is None or v in CORRUPTIONS,
    "ops": lambda v: isinstance(v, list | tuple) and bool(v) and all(op in OPS for op in v),
    "count": lambda v: v is None or (_integer(v) and v > 0),
}
_RULES = {
    "delay": "seconds, 0 or more",
    "error": "an HTTP status 500..599, or null",
    "decline": f"one of {', '.join(DECLINES)}, or null",
    "hang": "seconds, 0 or more, or -1 (until the faults change)",
    "stop_reading": "true or false",
    "corrupt": f"one of {', '.join(CORRUPTIONS)}, or null",
    "ops": f"a non-empty list of {', '.join(OPS)}",
    "count": "a number of requests, 1 or more, or null (every request)",
}


@dataclass
class FaultBoard:
    """The faults of every biller now; ``take`` counts a request against ``count``."""

    faults: dict[str, Faults] = field(default_factory=dict)

    def get(self, code: str) -> Faults:
        return self.faults.get(code, Faults())

    def set(self, code: str, faults: Faults) -> None:
        self.faults[code] = faults

    def peek(self, code: str, op: str) -> Faults | None:
        """The faults a request would meet, without counting it."""
        found = self.faults.get(code)
        return found if found is not None and found.applies_to(op) else None

    def take(self, code: str, op: str) -> Faults | None:
        """The faults this request meets, counted (the last counted one clears them)."""
        found = self.peek(code, op)
        if found is not None and found.count is not None:
            left = found.count - 1
            self.faults[code] = replace(found, count=left) if left else Faults()
        return found
