"""Run settings and the parsers for the compact command-line forms (mix, accounts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from iso.framing import PREFIXES, TPDU_SIZE
from loadtest.identity import CHANNELS, identities
from loadtest.security import OnUsCard
from loadtest.workload import BILLER, KINDS

DEFAULT_MIX = "inquiry=20,payment=70,reversal=10"
DEFAULT_ACCOUNTS = "1000001-1000100"
PREBUILD_MAX = 900_000  # below the 999,999 STANs of a terminal: a run never reuses one


def parse_mix(text: str) -> dict[str, int]:
    """``inquiry=20,payment=70,reversal=10`` -> weights; unknown kinds are an error."""
    weights: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        if not sep or kind not in KINDS or not value.isdigit():
            raise ValueError(f"bad mix entry {part!r}; use e.g. {DEFAULT_MIX}")
        weights[kind] = int(value)
    if sum(weights.values()) <= 0:
        raise ValueError("the mix needs at least one positive weight")
    return {kind: weights.get(kind, 0) for kind in KINDS}


def parse_accounts(text: str) -> list[str]:
    """Comma-separated accounts and inclusive numeric ranges (``1000001-1000100``)."""
    accounts: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, sep, last = part.partition("-")
        if sep and first.isdigit() and last.isdigit():
            width = len(first)
            accounts += [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
        else:
            accounts.append(part)
    if not accounts:
        raise ValueError("no accounts given")
    return list(dict.fromkeys(accounts))


def parse_terminals(text: str) -> tuple[str, ...]:
    """``ATM00001,ATM00002`` -> the terminal ids a run may speak as."""
    terminals = tuple(dict.fromkeys(filter(None, (p.strip() for p in text.split(",")))))
    if not terminals:
        raise ValueError("no terminals given")
    return terminals


def parse_tpdu(text: str | None) -> bytes | None:
    """TPDU as 10 hex digits (e.g. 6000010000), or None for channels without one."""
    if not text:
        return None
    raw = bytes.fromhex(text)
    if len(raw) != TPDU_SIZE:
        raise ValueError(f"TPDU must be {TPDU_SIZE} bytes ({2 * TPDU_SIZE} hex digits)")
    return raw


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; the CLI builds it, tests build it directly."""

    host: str = "127.0.0.1"
    port: int = 8583
    channel: str = "atm"
    connections: int = 20
    concurrency: int = 1
    rate: float | None = None
    duration: float = 10.0
    warmup: float = 2.0
    timeout: float = 5.0
    mix: dict[str, int] = field(default_factory=lambda: parse_mix(DEFAULT_MIX))
    accounts: list[str] = field(default_factory=lambda: parse_accounts(DEFAULT_ACCOUNTS))
    discover: bool = True
    max_amount: int = 100
    min_amount: int = 1
    biller: str = BILLER  # e.g. an outline biller (MOB01) with --no-discover
    idle_connections: int = 0
    framing: str = "binary2"
    tpdu: bytes | None = None
    seed: int | None = None
    terminals: tuple[str, ...] | None = None  # None: every terminal of the channel
    mac_key: bytes | None = field(default=None, repr=False)  # TAK: MAC out, verify in
    on_us: OnUsCard | None = field(default=None, repr=False)  # card fields on payments
    # --cards: every on-us card payments are spread over (empty: just ``on_us``)
    cards: tuple[OnUsCard, ...] = field(default=(), repr=False)
    prebuild: int | None = None  # requests built before the window; None: auto, 0: none

    def validate(self) -> None:
        """Refuse settings that would make a run meaningless or unbounded."""
        self._validate_terminals()
        checks = [
            (self.channel in CHANNELS, f"channel must be one of {', '.join(CHANNELS)}"),
            (self.framing in PREFIXES, f"framing must be one of {', '.join(PREFIXES)}"),
            (self.connections >= 1, "need at least one connection"),
            (self.concurrency >= 1, "concurrency must be at least 1"),
            (self.rate is None or self.rate > 0, "rate must be positive"),
            (self.duration > 0, "duration must be positive"),
            (self.warmup >= 0, "warmup cannot be negative"),
            (self.timeout > 0, "timeout must be positive"),
            (self.idle_connections >= 0, "idle connections cannot be negative"),
            (self.max_amount >= 1, "max amount must be at least 1"),
            (1 <= self.min_amount <= self.max_amount, "min amount is 1 to the max amount"),
            (
                self.prebuild is None or 0 <= self.prebuild <= PREBUILD_MAX,
                f"prebuild is 0 to {PREBUILD_MAX} (STANs of one terminal must not repeat)",
            ),
            (not self.cards or self.on_us is not None, "more cards need an on-us card"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def _validate_terminals(self) -> None:
        if self.terminals and self.channel == "host":
            raise ValueError("a host link has no terminals to choose from")
        if self.channel in CHANNELS:
            identities(self.channel, self.terminals)  # raises for an unknown terminal

    @property
    def on_us_cards(self) -> tuple[OnUsCard, ...]:
        """The cards on-us payments are spread over; empty when payments are not on-us."""
        if self.cards:
            return self.cards
        return (self.on_us,) if self.on_us is not None else ()

    @property
    def mode(self) -> str:
        return "rate" if self.rate else "closed"
