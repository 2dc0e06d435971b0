"""Payments (0200) and advices (0220) of online billers: the biller takes the money.

A 0200 goes, in this order (switch/ledger/online.py says why it is safe):

1. an open circuit answers 91 at once: nothing written, nothing sent. The flow
   checks it (``reachable``) right after the request's own checks that cost nothing
   (DE 48, route, amount) and before any step that costs a round trip it can skip: an
   on-us card's PIN (a try reserved in the database, the HSM). Only what the spec puts
   first stays before it: the MAC check, and a repeat's stored answer. ``pay`` asks
   again (the circuit may have opened meanwhile);
2. the settle row (the intent) is committed, in a group commit (switch/intents.py);
3. the biller is called with the payment's biller id (``biller_payment_id``: the
   same for every repeat, so the biller's idempotency covers repeats);
4. accepted: the ledger posts the payment with the biller's answer and removes the
   settle row in one transaction; the 0210 carries the receipt (VR) and token (TK).
   A 68 (no usable answer) is recorded as the request's answer, so a repeat gets
   68 rather than a second call; a certain refusal (14, 13, 05, 91) answers its
   code and the settle row goes (the biller holds nothing). Anything else leaves
   the settle row to settle the doubt.

An advice (0220) is posted at once with an outbox ``pay`` row and answered 00,
whether or not the biller is up.
"""

from __future__ import annotations

import string
from dataclasses import replace
from datetime import UTC, datetime

from routing.billers import (
    Accepted,
    BillerError,
    Endpoint,
    InDoubt,
    PaymentRequest,
    Unavailable,
)
from routing.routes import NoAdapter
from switch.errors import FormatError
from switch.ledger.online import AnswerOrder, OnlinePaymentOrder
from switch.services import Services
from switch.steps import payment
from switch.steps.payment import order, request_key
from switch.transaction import Transaction

# Seconds beyond the call's time limit and the ledger's deadline before a settle row is
# due: by then the payment can no longer be posted (the writer never commits later).
SETTLE_MARGIN = 5.0
LONGEST = 64  # characters of biller_ref, receipt and token kept (their columns)
_PRINTABLE = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")


def transmitted_at(t: Transaction) -> datetime:
    """DE 7 (MMDDhhmmss, UTC) with its year: the one it falls in nearest the request's
    receipt. The transaction's own time, the same in every message of it (a repeat, a
    retransmission, the advice of a 0200), unlike the moment each one arrives."""
    transmitted = t.field("7")
    if len(transmitted) != 10 or not transmitted.isdigit():
        raise FormatError("7", "transmission date and time is not a time")
    month, day, hour, minute, second = (int(transmitted[i : i + 2]) for i in range(0, 10, 2))
    received = t.received_at
    year = received.year
    if month - received.month > 6:  # December's DE 7 seen in January
        year -= 1
    elif received.month - month > 6:  # January's seen in December (a clock ahead)
        year += 1
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise FormatError("7", "transmission date and time is not a time") from None


def biller_payment_id(t: Transaction) -> str:
    """The payment's id at the biller, from the transaction's identity (DE 32, DE 41,
    DE 11, DE 7 with its year): a repeat, the advice of it and its reversal name the same
    payment."""
    assert t.terminal is not None
    year = transmitted_at(t).year
    return f"{t.terminal.acquirer_id}-{t.terminal_id.strip()}-{year}{t.field('7')}-{t.field('11')}"


def _request(t: Transaction, payment_id: str) -> PaymentRequest:
    """What the biller is told. Every field comes from the transaction's identity and
    financial content, ``paid_at`` included (DE 7, not the arrival time): the same
    payment id then always carries the same content, which the biller's idempotency
    requires (billers.md: the same id with other content is a 409). So the advice of a
    0200 that ended in 68, or a retransmission a second later, is the payment the biller
    may already hold, not a conflicting one."""
    assert t.biller is not None
    return PaymentRequest(
        payment_id=payment_id,
        account=t.bill_data["AC"],
        amount=t.amount,
        currency=t.request.get("49", t.biller.currency),
        paid_at=transmitted_at(t),
        channel=t.origin.kind,
        invoice=t.bill_data.get("IN"),
    )


def checked(accepted: Accepted) -> Accepted:
    """An acceptance whose reference, receipt or token cannot be stored or sent in DE 48
    is no acceptance to keep: in doubt (68), and settled."""
    for value in (accepted.biller_ref, accepted.receipt, accepted.token):
        if value is not None and (len(value) > LONGEST or not _PRINTABLE.issuperset(value)):
            raise InDoubt("acceptance with an unusable reference, receipt or token")
    return accepted


def _refuse_if_unreachable(t: Transaction, sv: Services) -> Endpoint:
    """The biller's endpoint; 91 (``Unavailable``) if it has none or its circuit is open."""
    assert t.biller is not None
    endpoint = sv.reference().endpoint(t.biller.code)
    if endpoint is None or not sv.router.adapter(t.biller.kind).available(t.biller.code):
        raise Unavailable("circuit open" if endpoint else "no endpoint")
    return endpoint


async def reachable(t: Transaction, sv: Services) -> None:
    """Step: a payment to an online biller whose circuit is open is 91 here, before any
    step that costs a round trip (a 91 records nothing, so nothing needs them)."""
    if _remote(t, sv):
        _refuse_if_unreachable(t, sv)


async def pay(t: Transaction, sv: Services) -> dict[str, str]:
    biller = t.biller
    assert biller is not None and sv.intents is not None
    adapter = sv.router.adapter(biller.kind)
    endpoint = _refuse_if_unreachable(t, sv)
    payment_id = biller_payment_id(t)
    delay = max(endpoint.timeout, sv.ledger_deadline) + SETTLE_MARGIN
    await sv.intents.arm(biller.code, payment_id, delay)
    try:
        accepted = checked(await adapter.pay(biller.code, _request(t, payment_id)))
    except BillerError as exc:
        if exc.moved:
            return await _in_doubt(t, sv, exc)
        sv.intents.drop(payment_id)
        raise
    if accepted.receipt:
        t.out_bill["VR"] = accepted.receipt
    if accepted.token:
        t.out_bill["TK"] = accepted.token
    posted = order(t, sv, advice=False, kind=OnlinePaymentOrder)
    posted = replace(posted, biller_payment_id=payment_id, accepted=accepted)
    recorded = await sv.writer.submit(posted, t.received_at)
    await payment.pin_released(t)
    return recorded.response


async def _in_doubt(t: Transaction, sv: Services, exc: BillerError) -> dict[str, str]:
    """68, recorded as the request's answer (its settle row stays and settles it)."""
    answer = AnswerOrder(
        key=request_key(t),
        request_hash=sv.hasher.request(t.mti, t.request),
        respond=lambda outcome: t.response(outcome.code, {}),
        business_day=t.business_day,  # type: ignore[arg-type]
        code=exc.code,
    )
    recorded = await sv.writer.submit(answer, t.received_at)
    return recorded.response


async def record_advice(t: Transaction, sv: Services) -> dict[str, str]:
    """The advice's payment in the ledger, and its delivery to the biller in the outbox."""
    payment_id = biller_payment_id(t)
    advice = order(t, sv, advice=True, kind=OnlinePaymentOrder)
    advice = replace(advice, biller_payment_id=payment_id, request=_request(t, payment_id))
    recorded = await sv.writer.submit(advice, t.received_at)
    return recorded.response


def _remote(t: Transaction, sv: Services) -> bool:
    """Whether the request's biller takes payments itself (an online biller)."""
    if t.biller is None:
        return False
    try:
        return sv.router.adapter(t.biller.kind).remote
    except NoAdapter:
        return False


async def pay_by_kind(t: Transaction, sv: Services) -> dict[str, str]:
    """Step: the payment through its biller (online) or in the ledger (the others)."""
    return await (pay(t, sv) if _remote(t, sv) else payment.pay(t, sv))


async def advice_by_kind(t: Transaction, sv: Services) -> dict[str, str]:
    """Step: the advice in the ledger, with its delivery to an online biller."""
    return await (record_advice(t, sv) if _remote(t, sv) else payment.record_advice(t, sv))
