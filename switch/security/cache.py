"""On-us cards as the PIN check needs them, and a short-lived cache of them."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Card:
    pan_hash: str
    pvki: str
    pvv: str
    wallet_account: str
    currency: str
    active: bool


class CardCache:
    """Recently used on-us cards, so a PIN check costs no database read.

    What the cache may hold stale is harmless: the card's PVV and wallet do not
    change, and it holds no PIN tries: every try is reserved in the card's ``pin_tries`` row
    (switch/security/cards.py), which decides for every node at once. Entries
    expire after ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 30.0, size: int = 100_000) -> None:
        self._ttl = ttl
        self._size = size
        self._cards: dict[str, tuple[Card, float]] = {}

    def get(self, pan_hash: str) -> Card | None:
        found = self._cards.get(pan_hash)
        if found is None or time.monotonic() - found[1] > self._ttl:
            return None
        return found[0]

    def put(self, card: Card) -> None:
        if len(self._cards) >= self._size:
            self._cards.clear()  # crude, and rare: a full cache starts again
        self._cards[card.pan_hash] = (card, time.monotonic())
