"""The values the ledger writer works with: request keys, orders and their outcomes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_

from switch.ledger import schema as s
from switch.ledger.sql import Writes


@dataclass(frozen=True)
class RequestKey:
    """The identity of a request: DE 32 + DE 41 + DE 11 + DE 7, and the base MTI."""

    acquirer_id: str
    terminal_id: str
    stan: str
    transmitted: str
    mti: str


# What a financial transaction's identity holds (``transactions.state``, identity.py).
PAID = "paid"  # an approved 0200 or 0220 created its payment
REVERSED_FIRST = "reversed_first"  # a reversal came for it before any payment: a tombstone


@dataclass(frozen=True)
class Outcome:
    """What an order decided: a response code and facts for the response.

    ``claim`` is the state this outcome records under its transaction's identity
    (``PAID``, ``REVERSED_FIRST``), if it records one: the database's uniqueness of
    that identity is what decides a race between a payment and its reversal.
    """

    code: str
    facts: dict[str, Any] = field(default_factory=dict)
    claim: str | None = None


@dataclass(frozen=True)
class Recorded:
    """The committed result handed back to the pipeline."""

    code: str
    response: dict[str, str]
    replay: bool = False


Respond = Callable[[Outcome], dict[str, str]]


@dataclass
class Order(ABC):
    key: RequestKey
    request_hash: str
    respond: Respond
    business_day: date

    @abstractmethod
    def apply(self, conn: Connection, now: datetime, writes: Writes) -> Outcome:
        """Check this order and put its effect into ``writes`` (sent with its request row);
        decline before writing anything."""


class BatchOrder(Order):
    """An order whose kind is applied for the whole batch at once (see ``apply_batch``)."""

    @classmethod
    @abstractmethod
    def apply_batch(
        cls, conn: Connection, orders: Sequence[Order], now: datetime, writes: Writes
    ) -> list[Outcome]: ...

    def apply(self, conn: Connection, now: datetime, writes: Writes) -> Outcome:
        return self.apply_batch(conn, [self], now, writes)[0]


def key_clause(acquirer_id: str, terminal_id: str, stan: str, transmitted: str):  # type: ignore[no-untyped-def]
    r = s.requests.c
    return and_(
        r.acquirer_id == acquirer_id,
        r.terminal_id == terminal_id,
        r.stan == stan,
        r.transmitted == transmitted,
    )
