"""One request from choice to bookkeeping: pick a kind, build it, send, settle.

Settling is where the generator keeps its own books honest: amounts go back
to the debt book when a payment is declined or reversed, approved payments
become reversal candidates and ledger facts, and a payment whose outcome we
never learnt (timeout, lost connection) is remembered as "in doubt" so the
ledger check does not call it a phantom.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from loadtest import workload
from loadtest.budget import DebtBook, ReversalPool
from loadtest.client import ERROR, Reply, TerminalProtocol
from loadtest.identity import Counters, Identity
from loadtest.ledger_check import LedgerFacts
from loadtest.security import OnUsCard
from loadtest.stats import OK, Outcome, Recorder


@dataclass(frozen=True)
class Planned:
    """A built request and what settling its reply needs to know."""

    kind: str
    fields: dict[str, str]
    header: workload.Header
    account: str = ""
    amount: int = 0
    original: workload.Original | None = None


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
        card: OnUsCard | None = None,
    ) -> None:
        self._kinds = [kind for kind, weight in mix.items() if weight > 0]
        self._weights = [mix[kind] for kind in self._kinds]
        self._book = book
        self._pool = ReversalPool()
        self._counters = counters
        self._facts = facts
        self._recorder = recorder
        self._clock = clock
        self._rng = rng
        self._card = card
        self.fallbacks: Counter[str] = Counter()

    async def send(self, conn: TerminalProtocol, intended: float) -> Reply:
        """Send one request and record it against its intended send time."""
        planned = self._plan(conn.identity)
        reply = await conn.request(planned.fields)
        self._settle(planned, reply)
        code = workload.response_code(reply.fields) if reply.fields else None
        self._recorder.record(Outcome(planned.kind, intended, reply.done, reply.status, code))
        return reply

    def _plan(self, identity: Identity) -> Planned:
        """Draw a kind; fall back when there is nothing to reverse or nothing owed."""
        kind = self._rng.choices(self._kinds, self._weights)[0]
        header = self._header(identity)
        if kind == "reversal":
            original = self._pool.take(identity)
            if original is not None:
                fields = workload.reversal(header, original)
                return Planned(
                    "reversal", fields, header, original.account, original.amount, original
                )
            self.fallbacks["reversal->payment"] += 1
            kind = "payment"
        if kind == "payment":
            reserved = self._book.reserve()
            if reserved is not None:
                account, amount = reserved
                fields = workload.payment(header, account, amount, card=self._card)
                return Planned("payment", fields, header, account, amount)
            self.fallbacks["payment->inquiry"] += 1
        account = self._rng.choice(self._book.accounts)
        return Planned("inquiry", workload.inquiry(header, account), header, account)

    def _header(self, identity: Identity) -> workload.Header:
        return workload.Header(
            identity, self._counters.stan(identity), workload.stamp_now(), self._counters.rrn.next()
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
