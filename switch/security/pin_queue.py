"""One PIN check at a time per on-us card on this node, the others queued in order.

Every try is reserved on the card row before the HSM sees it (switch/security/cards.py),
and a card has only ``pin_tries`` of them: were a node to verify a card's PINs all at
once, the fourth right PIN in flight would find no try left and get 75 though the card
is not blocked. Queued here, a node holds at most one reservation per card, so only
several nodes verifying one card at the same moment can use its tries up between them.
The queue is also what makes pipelined tries on one connection run in the order sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from twisted.internet.defer import DeferredLock


class PinQueue:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[DeferredLock, int]] = {}

    @asynccontextmanager
    async def turn(self, pan_hash: str) -> AsyncIterator[None]:
        """Wait for this card's turn (first come, first served), hold it while inside."""
        lock, users = self._locks.get(pan_hash, (None, 0))
        if lock is None:
            lock = DeferredLock()
        self._locks[pan_hash] = (lock, users + 1)
        try:
            await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[pan_hash]
            if users == 1:
                del self._locks[pan_hash]  # no one waits: forget the card
            else:
                self._locks[pan_hash] = (lock, users - 1)
