"""Reference data (acquirers, terminals, billers, fee rules) held in memory.

Every request needs them, so they are read once and refreshed on demand
instead of costing a database round trip per message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from routing.billers import Endpoint
from switch.ledger import schema as s
from switch.ledger.fees import FeeRules, load_fee_rules

# Opens a biller's sealed secret (switch/sealing.py): ``(code, sealed) -> secret``, or
# None when it does not open (the caller logs why); that biller then has no endpoint.
Unseal = Callable[[str, str], bytes | None]

# Billers whose open debts the switch holds: their payments are decided against them.
# Outline billers accept any account (limits only); online billers decide themselves.
DEBTS_HELD = frozenset({"held"})


@dataclass(frozen=True)
class Terminal:
    acquirer_id: str
    terminal_id: str
    channel: str
    merchant_id: str | None
    active: bool


@dataclass(frozen=True)
class Biller:
    code: str
    name: str
    kind: str
    currency: str
    min_amount: int
    max_amount: int | None
    partial_allowed: bool
    overpay_allowed: bool
    active: bool
    url: str | None = None  # online: base URL of its API
    secret: str | None = field(default=None, repr=False)  # online: sealed HMAC secret
    timeout_ms: int = 3000
    max_in_flight: int = 64

    @property
    def debts_held(self) -> bool:
        return self.kind in DEBTS_HELD


@dataclass(frozen=True)
class Reference:
    """A snapshot of reference data; replaced whole on refresh."""

    acquirers: frozenset[str]
    terminals: dict[tuple[str, str], Terminal]
    billers: dict[str, Biller]
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    fees: FeeRules = field(default_factory=FeeRules)

    def terminal(self, acquirer_id: str, terminal_id: str) -> Terminal | None:
        return self.terminals.get((acquirer_id, terminal_id))

    def biller(self, code: str) -> Biller | None:
        return self.billers.get(code)

    def endpoint(self, code: str) -> Endpoint | None:
        """How to reach an online biller (None: not online, or its secret did not open)."""
        return self.endpoints.get(code)


def load_reference(conn: Connection, unseal: Unseal | None = None) -> Reference:
    """The snapshot; online billers' endpoints only with ``unseal`` (their secrets)."""
    acquirers = frozenset(
        r.id for r in conn.execute(select(s.acquirers.c.id).where(s.acquirers.c.status == "active"))
    )
    terminals = {
        (r.acquirer_id, r.terminal_id): Terminal(
            r.acquirer_id, r.terminal_id, r.channel, r.merchant_id, r.status == "active"
        )
        for r in conn.execute(select(s.terminals))
    }
    billers = {
        r.code: Biller(
            r.code,
            r.name,
            r.kind,
            r.currency,
            r.min_amount,
            r.max_amount,
            r.partial_allowed,
            r.overpay_allowed,
            r.status == "active",
            r.url,
            r.secret,
            r.timeout_ms,
            r.max_in_flight,
        )
        for r in conn.execute(select(s.billers))
    }
    endpoints = _endpoints(billers, unseal)
    return Reference(acquirers, terminals, billers, endpoints, load_fee_rules(conn))


def _endpoints(billers: dict[str, Biller], unseal: Unseal | None) -> dict[str, Endpoint]:
    found = {}
    for b in billers.values():
        if unseal is None or b.kind != "online" or not b.url or not b.secret:
            continue
        secret = unseal(b.code, b.secret)
        if secret is not None:
            found[b.code] = Endpoint(b.url, secret, b.timeout_ms / 1000, b.max_in_flight)
    return found
