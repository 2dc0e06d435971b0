"""One request from choice to bookkeeping: pick a kind, build it, send, settle.

Settling is where the generator keeps its own books honest: amounts go back
to the debt book when a payment is declined or reversed, approved payments
become reversal candidates and ledger facts, and a payment whose outcome we
never learnt (timeout, lost connection) is remembered as "in doubt" so the
ledger check does not call it a phantom.

Requests are normally prebuilt before the window (``prebuild.py``): then
``send`` only takes the next ready frame of its terminal. A reversal points
at an approved payment known only when it is sent; the reversals of the
payments likeliest to be reversed (each terminal's first ones: the oldest
is reversed first) are prebuilt too, any other is built when sent, as is
anything asked for after the prebuilt requests ran out.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from twisted.internet.interfaces import IReactorTime

from loadtest import workload
from loadtest.budget import DebtBook, ReversalPool
from loadtest.client import ERROR, Reply, TerminalProtocol
from loadtest.identity import Counters, Identity
from loadtest.ledger_check import LedgerFacts
from loadtest.security import OnUsCard
from loadtest.stats import OK, Outcome, Recorder


@dataclass(frozen=True, slots=True)
class Planned:
    """A request and what settling its reply needs to know.

    Built on the fly it has ``fields``; prebuilt it has its ready ``frame`` and
    match ``key`` instead (fields dropped to save memory). A prebuilt reversal
    has neither: its original is chosen when it is sent.
    """

    kind: str
    fields: dict[str, str] | None
    header: workload.Header
    account: str = ""
    amount: int = 0
    original: workload.Original | None = None
    frame: bytes | None = None
    key: workload.MatchKey | None = None
    fallback: str | None = None  # substitution made when it was built, counted when sent


class Traffic:
    """Chooses and accounts for the requests of the measured phase."""

    def __init__(
        self,
        mix: dict[str, int],
        book: DebtBook,
        counters: Counters,
        facts: LedgerFacts,
        recorder: Recorder,
        clock: IReactorTime,
        rng: random.Random,
        card: OnUsCard | Sequence[OnUsCard] | None = None,
        biller: str = workload.BILLER,
    ) -> None:
        self._biller = biller
        self._kinds = [kind for kind, weight in mix.items() if weight > 0]
        self._weights = [mix[kind] for kind in self._kinds]
        self._book = book
        self._pool = ReversalPool()
        self._counters = counters
        self._facts = facts
        self._recorder = recorder
        self._clock = clock
        self._rng = rng
        self._cards: tuple[OnUsCard, ...] = (
            () if card is None else (card,) if isinstance(card, OnUsCard) else tuple(card)
        )
        self._ready: dict[str, deque[Planned]] | None = None  # prebuilt, per terminal
        self._ready_reversals: dict[str, Planned] = {}  # prebuilt, by the payment's RRN
        self.fallbacks: Counter[str] = Counter()
        self.built_live: Counter[str] = Counter()  # prebuilt mode: built while sending

    def use_prebuilt(
        self, ready: dict[str, deque[Planned]], reversals: dict[str, Planned] | None = None
    ) -> None:
        """Send these (per ``Identity.key``, in order) instead of building on the fly, and
        these reversals (by their payment's RRN); response MACs are then checked later."""
        self._ready = ready
        self._ready_reversals = reversals or {}

    @property
    def prebuilt_left(self) -> int:
        """Prebuilt requests never sent."""
        return sum(map(len, self._ready.values())) if self._ready is not None else 0

    async def send(self, conn: TerminalProtocol, intended: float) -> Reply:
        """Send one request and record it against its intended send time."""
        planned = self._next(conn.identity)
        later = self._ready is not None
        if planned.frame is not None and planned.key is not None:
            reply = await conn.send_frame(planned.key, planned.frame, later)
        else:
            assert planned.fields is not None
            reply = await conn.request(planned.fields, later)
        self._settle(planned, reply)
        code = workload.response_code(reply.fields) if reply.fields else None
        self._recorder.record(Outcome(planned.kind, intended, reply.done, reply.status, code))
        return reply

    def _next(self, identity: Identity) -> Planned:
        """The next prebuilt request of this terminal, or one built now."""
        if self._ready is None:
            return self.plan(identity)
        queue = self._ready.get(identity.key)
        if not queue:
            self.built_live["after the prebuilt ran out"] += 1
            return self.plan(identity)
        planned = queue.popleft()
        if planned.fallback:
            self.fallbacks[planned.fallback] += 1
        if planned.kind == "reversal" and planned.original is None:
            return self._reversal(identity, None)
        return planned

    def plan(
        self, identity: Identity, stamp: workload.Stamp | None = None, prebuilt: bool = False
    ) -> Planned:
        """Draw a kind; fall back when there is nothing to reverse or nothing owed.

        ``prebuilt``: a reversal is left as a placeholder (without fields), to
        be built when sent; a payment that falls back to an inquiry carries its
        fallback, counted only if it is sent.
        """
        kind = self._rng.choices(self._kinds, self._weights)[0]
        header = self._header(identity, stamp)
        if kind == "reversal":
            if prebuilt:
                return Planned("reversal", None, header)
            return self._reversal(identity, header)
        if kind == "payment":
            return self._payment(header, count_fallback=not prebuilt)
        return self._inquiry(header)

    def reversal_of(self, payment: Planned, stamp: workload.Stamp | None = None) -> Planned:
        """The reversal a payment would get, built ahead (its payment id comes when sent)."""
        header = self._header(payment.header.identity, stamp)
        original = workload.Original(payment.header, payment.account, payment.amount, None)
        fields = workload.reversal(header, original, biller=self._biller)
        return Planned("reversal", fields, header, payment.account, payment.amount)

    def _reversal(self, identity: Identity, header: workload.Header | None) -> Planned:
        """Reverse this terminal's oldest approved payment: prebuilt if we have it."""
        original = self._pool.take(identity)
        live = self._ready is not None
        if original is not None:
            ready = self._ready_reversals.pop(original.header.rrn, None)
            if ready is not None:
                return replace(ready, original=original)
            self.built_live["reversals"] += live
            header = header or self._header(identity)
            fields = workload.reversal(header, original, biller=self._biller)
            return Planned("reversal", fields, header, original.account, original.amount, original)
        self.fallbacks["reversal->payment"] += 1
        self.built_live["payments instead of reversals"] += live
        return self._payment(header or self._header(identity))

    def _payment(self, header: workload.Header, count_fallback: bool = True) -> Planned:
        reserved = self._book.reserve()
        if reserved is not None:
            account, amount = reserved
            card = self._card()
            fields = workload.payment(header, account, amount, self._biller, card=card)
            return Planned("payment", fields, header, account, amount)
        if count_fallback:
            self.fallbacks["payment->inquiry"] += 1
            return self._inquiry(header)
        planned = self._inquiry(header)
        fallback = "payment->inquiry"
        return Planned("inquiry", planned.fields, header, planned.account, fallback=fallback)

    def _card(self) -> OnUsCard | None:
        """A card at random (``--cards``); no draw for one card, so seeds replay as before."""
        if len(self._cards) <= 1:
            return self._cards[0] if self._cards else None
        return self._rng.choice(self._cards)

    def _inquiry(self, header: workload.Header) -> Planned:
        account = self._rng.choice(self._book.accounts)
        fields = workload.inquiry(header, account, self._biller)
        return Planned("inquiry", fields, header, account)

    def _header(self, identity: Identity, stamp: workload.Stamp | None = None) -> workload.Header:
        return workload.Header(
            identity,
            self._counters.stan(identity),
            stamp or workload.stamp_now(),
            self._counters.rrn.next(),
        )

    def _settle(self, planned: Planned, reply: Reply) -> None:
        if planned.kind == "payment":
            self._settle_payment(planned, reply)
        elif planned.kind == "reversal" and planned.original is not None:
            self._settle_reversal(planned, planned.original, reply)

    def _settle_payment(self, planned: Planned, reply: Reply) -> None:
        if reply.status == OK and workload.response_code(reply.fields or {}) == workload.APPROVED:
            payment_id = workload.receipt_number(reply.fields or {})
            if payment_id is None:
                self._facts.missing_rn += 1
            else:
                self._facts.approved[payment_id] = planned.amount
            self._pool.add(
                workload.Original(planned.header, planned.account, planned.amount, payment_id)
            )
        elif reply.status in (OK, ERROR):
            self._book.release(planned.account, planned.amount)
        else:
            self._facts.in_doubt_rrns.add(planned.header.rrn)

    def _settle_reversal(self, planned: Planned, original: workload.Original, reply: Reply) -> None:
        approved = workload.response_code(reply.fields or {}) == workload.APPROVED
        if reply.status == OK and approved:
            if original.payment_id is not None:
                self._facts.reversed.add(original.payment_id)
            self._book.release(planned.account, planned.amount)
        elif reply.status == ERROR:
            self._pool.add(original)
        elif reply.status != OK and original.payment_id is not None:
            self._facts.in_doubt_reversals.add(original.payment_id)
