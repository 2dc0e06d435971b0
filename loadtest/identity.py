"""Who the generator pretends to be, and the per-terminal counters that go with it.

The demo data (``switch/demo.py``) registers five ATMs and five POS terminals
under acquirer 100001 and one host link for acquirer 200002; the generator can
only speak as those. Several connections may share one terminal id, so the STAN
and RRN counters live here, one per terminal for the whole run, not one per
connection: the switch treats DE 32 + 41 + 11 + 7 as a request's identity and
would answer a reused STAN as a duplicate (code 94).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

CHANNELS = ("atm", "pos", "host")
TERMINALS_PER_CHANNEL = 5
ACQUIRER_TERMINALS = "100001"
ACQUIRER_HOST = "200002"
POS_MERCHANT = "AGENT0000000001"
STAN_MAX = 999999
RRN_COUNTER_DIGITS = 7


@dataclass(frozen=True)
class Identity:
    """DE 32 / 41 / 42 of one terminal (or of the host link, without DE 41)."""

    channel: str
    acquirer: str
    terminal: str | None = None
    merchant: str | None = None

    @property
    def key(self) -> str:
        """Counter and reversal-pool key: the terminal id, or the acquirer for a host."""
        return self.terminal or f"host:{self.acquirer}"

    @property
    def ledger_terminal(self) -> str:
        """``payments.terminal_id`` the switch records: '' for a host link."""
        return self.terminal or ""


def identities(channel: str, only: tuple[str, ...] | None = None) -> list[Identity]:
    """The identities a channel's connections rotate over; ``only`` keeps those terminals."""
    every = channel_identities(channel)
    if not only:
        return every
    unknown = sorted(set(only) - {i.terminal for i in every})
    if unknown:
        raise ValueError(f"no terminal {', '.join(unknown)} on the {channel} channel")
    return [i for i in every if i.terminal in only]


def channel_identities(channel: str) -> list[Identity]:
    """Every identity the demo data gives a channel."""
    if channel == "atm":
        return [_terminal("atm", "ATM", i, None) for i in range(1, TERMINALS_PER_CHANNEL + 1)]
    if channel == "pos":
        return [
            _terminal("pos", "POS", i, POS_MERCHANT) for i in range(1, TERMINALS_PER_CHANNEL + 1)
        ]
    if channel == "host":
        return [Identity("host", ACQUIRER_HOST)]
    raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")


def _terminal(channel: str, prefix: str, number: int, merchant: str | None) -> Identity:
    return Identity(channel, ACQUIRER_TERMINALS, f"{prefix}{number:05d}", merchant)


class StanCounter:
    """STANs 000001..999999 for one terminal, wrapping, never 000000."""

    def __init__(self, start: int = 1) -> None:
        self._next = (start - 1) % STAN_MAX + 1

    def next(self) -> str:
        """The next STAN as six digits."""
        value = self._next
        self._next = value % STAN_MAX + 1
        return f"{value:06d}"


class RrnCounter:
    """Retrieval reference numbers unique within a run (and across nearby runs).

    Layout: YYDDD of the run start (5) + a 7-digit counter that starts at a
    random point, so two runs on one day rarely reuse an RRN.
    """

    def __init__(self, started: datetime, start: int = 0) -> None:
        self._prefix = started.strftime("%y%j")
        self._next = start % 10**RRN_COUNTER_DIGITS

    def next(self) -> str:
        """The next RRN, 12 characters."""
        value = self._next
        self._next = (value + 1) % 10**RRN_COUNTER_DIGITS
        return f"{self._prefix}{value:0{RRN_COUNTER_DIGITS}d}"


class Counters:
    """One STAN counter per terminal and one RRN counter for the run."""

    def __init__(self, started: datetime, rng: random.Random) -> None:
        self._rng = rng
        self._stans: dict[str, StanCounter] = {}
        self.rrn = RrnCounter(started, rng.randrange(10**RRN_COUNTER_DIGITS))

    def stan(self, identity: Identity) -> str:
        """Next STAN of this terminal; each terminal starts at a random point."""
        counter = self._stans.get(identity.key)
        if counter is None:
            counter = self._stans[identity.key] = StanCounter(self._rng.randint(1, STAN_MAX))
        return counter.next()
