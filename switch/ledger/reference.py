"""Reference data (acquirers, terminals, billers) held in memory.

Every request needs them, so they are read once and refreshed on demand
instead of costing a database round trip per message.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from switch.ledger import schema as s


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
    fee_fixed: int
    active: bool


@dataclass(frozen=True)
class Reference:
    """A snapshot of reference data; replaced whole on refresh."""

    acquirers: frozenset[str]
    terminals: dict[tuple[str, str], Terminal]
    billers: dict[str, Biller]

    def terminal(self, acquirer_id: str, terminal_id: str) -> Terminal | None:
        return self.terminals.get((acquirer_id, terminal_id))

    def biller(self, code: str) -> Biller | None:
        return self.billers.get(code)


def load_reference(conn: Connection) -> Reference:
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
            r.fee_fixed,
            r.status == "active",
        )
        for r in conn.execute(select(s.billers))
    }
    return Reference(acquirers, terminals, billers)
