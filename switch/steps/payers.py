"""Requests by payer code: DE 48 PC instead of BL + AC (host interface, section 4).

An inquiry lists every open debt of the code's accounts in DL, oldest first: the
held billers' from the switch's database, the online billers' asked of each biller
at once (their ``fetch_bill`` Deferreds side by side, no threads); a biller that
fails is left out and named in the log; outline billers owe nothing, so they are
left out. A payment splits DE 4 over the same debts, oldest first (AL), as one
ledger order (switch/ledger/splits.py). Parts at online billers go to their APIs
first, each with the guarantees of a single online payment: its settle row is
committed before the biller is called (switch/steps/online.py). If any part is
declined, the whole payment is declined and nothing stays paid: the parts the
billers accepted are reversed through the outbox (their settle rows, made due at
once in the transaction that records the decline).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from twisted.internet.defer import DeferredList

from iso.amounts import additional_amount, amount_field, fee_amount
from iso.bill_data import LEN_SIZE, MAX_FIELD, TAG_SIZE, build_bill_data
from routing.billers import BillerError, InDoubt, PaymentRequest, Unavailable
from routing.bills import Bill
from routing.routes import NoAdapter
from switch.cardholder import mask_pan
from switch.errors import FormatError, InvalidAmount, NotSupported, UnknownAccount
from switch.ledger import payer_codes
from switch.ledger.online import Intent
from switch.ledger.orders import Outcome
from switch.ledger.payer_split import Debt, Part, joined, listing, part_violation, split
from switch.ledger.reference import Biller
from switch.ledger.splits import OnlinePart, SplitAnswerOrder, SplitPaymentOrder
from switch.security.cards import is_on_us
from switch.services import Services
from switch.steps.checks import amount_of, by_payer_code
from switch.steps.inquiry import AMOUNT_DUE
from switch.steps.online import SETTLE_MARGIN, biller_payment_id, checked
from switch.steps.payment import receipt_number, request_key
from switch.transaction import Transaction

log = structlog.get_logger("switch.payers")

Step = Callable[[Transaction, Services], Awaitable[dict[str, str] | None]]
AccountKey = tuple[str, str]


def when_payer_code(*steps: Step) -> Step:
    """A step that runs ``steps`` (to their response) when DE 48 names a payer code, and
    otherwise lets the flow go on with its biller-and-account steps."""

    async def by_payer_code_steps(t: Transaction, sv: Services) -> dict[str, str] | None:
        if not by_payer_code(t):
            return None
        for step in steps:
            response = await step(t, sv)
            if response is not None:
                return response
        raise RuntimeError("payer-code steps ended without a response")

    return by_payer_code_steps


async def payer_code(t: Transaction, sv: Services) -> None:
    code = t.bill_data["PC"]
    if not payer_codes.CODE.fullmatch(code):
        raise FormatError("48", "tag PC is not 1-32 letters and digits")
    t.out_bill["PC"] = code


@dataclass
class Found:
    """A payer code's accounts as a request sees them: the open debts (held and online),
    the held accounts (decided again in the ledger), the online accounts' bills."""

    billers: dict[str, Biller] = field(default_factory=dict)
    debts: list[Debt] = field(default_factory=list)
    held: list[tuple[Biller, str]] = field(default_factory=list)
    online: dict[AccountKey, Bill] = field(default_factory=dict)
    positions: dict[AccountKey, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(d.amount for d in self.debts)


async def found(t: Transaction, sv: Services) -> Found:
    """The code's accounts (one read on the read pool) and the online billers' bills
    (asked in parallel); 14 for an unknown code."""
    code = t.bill_data["PC"]
    ref = sv.reference()
    held = frozenset(c for c, b in ref.billers.items() if b.debts_held and b.active)
    view = await sv.reads.run(payer_codes.look_up, code, held)
    if view is None:
        raise UnknownAccount("unknown payer code")
    result = Found(debts=list(view.held_debts))
    asked: list[tuple[Biller, str, Any]] = []
    for holding in view.holdings:
        biller = ref.biller(holding.biller)
        key = (holding.biller, holding.account)
        result.positions[key] = holding.position
        if biller is None or not biller.active:
            _left_out(code, holding.biller, "biller unknown or inactive")
            continue
        result.billers[biller.code] = biller
        try:
            adapter = sv.router.adapter(biller.kind)
        except NoAdapter:
            _left_out(code, biller.code, f"no adapter for {biller.kind} billers")
            continue
        if biller.debts_held:
            result.held.append((biller, holding.account))
        elif adapter.remote:  # outline billers owe nothing: left out
            asked.append(
                (biller, holding.account, adapter.fetch_bill(biller.code, holding.account, None))
            )
    answers = await DeferredList([d for _, _, d in asked], consumeErrors=True)
    for (biller, account, _), (ok, value) in zip(asked, answers, strict=True):
        if not ok:
            _left_out(code, biller.code, f"{type(value.value).__name__}: {value.value}")
        elif value is None:
            _left_out(code, biller.code, f"account {account} unknown at the biller")
        else:
            result.online[(biller.code, account)] = value
            result.debts.extend(Debt(biller.code, account, p, a) for p, a in value.debts)
    return result


def _left_out(code: str, biller: str, reason: str) -> None:
    log.warning("payer code: biller left out", payer_code=code, biller=biller, reason=reason)


# -- inquiry -------------------------------------------------------------------

_TAG = TAG_SIZE + LEN_SIZE


async def inquire(t: Transaction, sv: Services) -> dict[str, str]:
    """00 with DL (every open debt, oldest first; as many whole entries as DE 48 holds)
    and, when the debts share one currency, DU and DE 54 with their total (all of them:
    a DU above DL's sum says DL was cut)."""
    seen = await found(t, sv)
    currencies = {seen.billers[d.biller].currency for d in seen.debts}
    if len(currencies) <= 1:
        t.out_bill["DU"] = amount_field(seen.total)
    room = MAX_FIELD - len(build_bill_data(t.out_bill)) - _TAG
    shown = listing(seen.debts, room)
    t.out_bill["DL"] = joined(shown)
    if len(shown) < len(seen.debts):
        log.info(
            "payer code: DL cut",
            payer_code=t.bill_data["PC"],
            listed=len(shown),
            debts=len(seen.debts),
        )
    if len(currencies) == 1:
        currency = currencies.pop()
        t.out["54"] = additional_amount(seen.total, currency, AMOUNT_DUE)
        t.out.setdefault("49", currency)
    t.out["48"] = build_bill_data(t.out_bill)
    return t.response("00")


# -- payment -------------------------------------------------------------------


async def pay(t: Transaction, sv: Services) -> dict[str, str]:
    """Split DE 4 over the code's debts, pay the online parts at their billers, then
    the whole split in the ledger as one order."""
    t.amount = amount_of(t)
    currency = t.field("49")
    if t.amount == 0:
        raise InvalidAmount("zero amount")
    pan = t.request.get("2")
    if pan and is_on_us(pan, sv.issuer_bins):
        raise NotSupported("an on-us card cannot pay by payer code")
    seen = await found(t, sv)
    parts = _checked_split(seen, t.amount, currency)
    remote = [p for p in parts if p.account_key in seen.online]
    online: tuple[OnlinePart, ...] = ()
    if remote:
        paid = await _pay_online(t, sv, seen, remote)
        if isinstance(paid, dict):  # declined, and recorded as the request's answer
            return paid
        online = paid
    pan_hash = sv.hasher.pan(pan) if pan else None
    order = SplitPaymentOrder(
        key=request_key(t),
        request_hash=sv.hasher.request(t.mti, t.request),
        respond=lambda outcome: payment_response(t, outcome),
        business_day=t.business_day,  # type: ignore[arg-type]
        payer_code=t.bill_data["PC"],
        held=tuple(seen.held),
        online=online,
        online_due=sum(bill.amount_due or 0 for bill in seen.online.values()),
        amount=t.amount,
        currency=currency,
        channel=t.origin.kind,
        rrn=t.request.get("37"),
        masked_pan=mask_pan(pan) if pan else None,
        pan_hash=pan_hash,
        fees=sv.reference().fees,
    )
    recorded = await sv.writer.submit(order, t.received_at)
    return recorded.response


def _checked_split(seen: Found, amount: int, currency: str) -> list[Part]:
    """The split as planned now, or 13: nothing owed, more than owed where a biller of
    the debts forbids overpayment, a part against its biller's rules or currency."""
    parts = split(seen.debts, amount)
    if not parts:
        raise InvalidAmount("the payer code's accounts owe nothing")
    billers = {d.biller for d in seen.debts}
    if amount > seen.total and not all(seen.billers[b].overpay_allowed for b in billers):
        raise InvalidAmount("above the total due, and a biller forbids overpayment")
    for part in parts:
        broken = part_violation(seen.billers[part.biller], part, currency)
        if broken:
            raise InvalidAmount(broken)
    return parts


@dataclass
class _Call:
    part: Part
    biller: Biller
    payment_id: str
    period: str


async def _pay_online(
    t: Transaction, sv: Services, seen: Found, parts: list[Part]
) -> tuple[OnlinePart, ...] | dict[str, str]:
    """Each online part's settle row committed, then every biller called at once. All
    accepted: the parts. Otherwise the split's answer: a certain refusal of every call
    not accepted is raised (nothing moved, nothing recorded); else the decline is
    recorded and the accepted parts reversed (``SplitAnswerOrder``)."""
    assert sv.intents is not None
    ref = sv.reference()
    base = biller_payment_id(t)
    calls: list[_Call] = []
    longest = sv.ledger_deadline
    for part in parts:
        biller = seen.billers[part.biller]
        endpoint = ref.endpoint(biller.code)
        if endpoint is None or not sv.router.adapter(biller.kind).available(biller.code):
            raise Unavailable(f"{biller.code}: " + ("circuit open" if endpoint else "no endpoint"))
        longest = max(longest, endpoint.timeout)
        bill = seen.online[part.account_key]
        period = bill.debts[0][0] if bill.debts else ""
        calls.append(_Call(part, biller, f"{base}-{seen.positions[part.account_key]}", period))
    armed = await DeferredList(
        [sv.intents.arm(c.biller.code, c.payment_id, longest + SETTLE_MARGIN) for c in calls],
        consumeErrors=True,
    )
    for ok, value in armed:
        if not ok:
            raise value.value
    currency = t.field("49")
    answers = await DeferredList(
        [
            sv.router.adapter(c.biller.kind).pay(
                c.biller.code,
                PaymentRequest(
                    payment_id=c.payment_id,
                    account=c.part.account,
                    amount=c.part.amount,
                    currency=currency,
                    paid_at=t.received_at,
                    channel=t.origin.kind,
                    invoice=seen.online[c.part.account_key].invoice,
                ),
            )
            for c in calls
        ],
        consumeErrors=True,
    )
    accepted: list[OnlinePart] = []
    refused: list[tuple[_Call, BillerError]] = []
    doubtful: list[tuple[_Call, BillerError]] = []
    for c, (ok, value) in zip(calls, answers, strict=True):
        try:
            if not ok:
                value.raiseException()
            facts = checked(value)
        except BillerError as exc:
            (doubtful if exc.moved else refused).append((c, exc))
            continue
        except Exception as exc:  # an answer no one expected: the biller may hold it
            log.error("payer code: online part failed", biller=c.biller.code, exc_info=exc)
            doubtful.append((c, InDoubt(type(exc).__name__)))
            continue
        accepted.append(
            OnlinePart(
                c.biller, c.part.account, c.part.amount, c.part.due, c.period, c.payment_id, facts
            )
        )
    if not refused and not doubtful:
        return tuple(accepted)
    return await _declined(t, sv, accepted, refused, doubtful)


async def _declined(
    t: Transaction,
    sv: Services,
    accepted: list[OnlinePart],
    refused: list[tuple[_Call, BillerError]],
    doubtful: list[tuple[_Call, BillerError]],
) -> dict[str, str]:
    assert sv.intents is not None
    for c, _ in refused:
        sv.intents.drop(c.payment_id)  # the biller holds nothing of it
    for c, exc in refused + doubtful:
        log.info(
            "payer code: online part declined",
            payer_code=t.bill_data["PC"],
            biller=c.biller.code,
            code=exc.code,
            reason=str(exc),
        )
    if not accepted and not doubtful:
        raise refused[0][1]  # nothing moved anywhere: not recorded, as a single payment's
    code = doubtful[0][1].code if doubtful else refused[0][1].code
    answer = SplitAnswerOrder(
        key=request_key(t),
        request_hash=sv.hasher.request(t.mti, t.request),
        respond=lambda outcome: t.response(outcome.code, {}),
        business_day=t.business_day,  # type: ignore[arg-type]
        code=code,
        settle_now=tuple(Intent(p.biller.code, p.payment_id, 0) for p in accepted),
    )
    recorded = await sv.writer.submit(answer, t.received_at)
    return recorded.response


def payment_response(t: Transaction, outcome: Outcome) -> dict[str, str]:
    """The 0210 of a split (runs in the writer thread: only reads ``t``): PC, AL (how DE 4
    was split), RN (the head payment), DU (what the listed debts still owe); DE 28 the
    parts' fees. An acknowledged repeat says only RN, as a single payment's does."""
    if outcome.code != "00":
        return t.response(outcome.code, {})
    facts = outcome.facts
    bill = dict(t.out_bill)
    if "parts" in facts:
        bill["AL"] = joined(p.part for p in facts["parts"])
    bill["RN"] = receipt_number(facts["payment_id"])
    if "due" in facts:
        bill["DU"] = amount_field(facts["due"])
    out = {"38": facts["auth_code"], "48": build_bill_data(bill)}
    if "fee" in facts:
        out["28"] = fee_amount(facts["fee"])
    return t.response("00", out)
