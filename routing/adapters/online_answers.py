"""What an online biller's answers mean (../shared/spec/billers.md "Online biller API").

Pure functions from an ``Answer`` (HTTP status, body, whether its signature
held) to the adapter's values or a ``BillerError``. They decide the money
question: for calls that may move money, an answer that cannot be trusted or
read (unsigned, not JSON, wrong types) is ``InDoubt``, never a decline, since
the biller may have taken the payment; a signed 5xx or busy answer is
``Unavailable`` (the biller says it did not take it); a signed 4xx is the decline
its error code names.
"""

from __future__ import annotations

import json
from typing import Any

from routing.biller_http import Answer
from routing.billers import (
    ERRORS,
    Accepted,
    BillerError,
    InDoubt,
    PaymentStatus,
    Refused,
    ReversedThere,
    Unavailable,
)
from routing.bills import Bill

# 4xx statuses that say "not now" rather than "no": the biller did not take the call.
BUSY_STATUSES = frozenset({408, 429})
PAYMENT_STATES = frozenset({"accepted", "reversed"})


class Garbage(ValueError):
    """An answer body that is not what the API promises."""


def refusal(answer: Answer) -> BillerError:
    """The error a signed answer other than 200 stands for."""
    if answer.status >= 500 or answer.status in BUSY_STATUSES:
        return Unavailable(f"HTTP {answer.status}")
    if not 400 <= answer.status < 500:
        return InDoubt(f"unexpected HTTP {answer.status}")
    code = error_code(answer.body)
    return ERRORS.get(code or "", Refused)(f"HTTP {answer.status} {code or '(no error code)'}")


def error_code(body: bytes) -> str | None:
    """The ``error`` of an error body, if it has a readable one."""
    try:
        code = _object(body).get("error")
    except Garbage:
        return None
    return code if isinstance(code, str) else None


def trusted(answer: Answer) -> Answer:
    """The answer itself if its signature held; otherwise it is as good as no answer."""
    if not answer.signed:
        raise InDoubt(f"HTTP {answer.status} answer without a valid signature")
    return answer


def accepted(answer: Answer) -> Accepted:
    """A payment's answer: the biller's acceptance, or the error it means."""
    if trusted(answer).status != 200:
        raise refusal(answer)
    body = _readable(answer.body)
    if body.get("status") == "reversed":  # a payment it took once and has reversed since
        raise ReversedThere("the biller holds this payment id reversed")
    if body.get("status") != "accepted":
        raise InDoubt(f"payment answer with status {body.get('status')!r}")
    return _or_in_doubt(
        lambda: Accepted(
            biller_ref=_text(body, "biller_ref"),
            receipt=_optional_text(body, "receipt"),
            token=_optional_text(body, "token"),
        )
    )


def bill(answer: Answer, account: str) -> Bill | None:
    """A bill inquiry's answer: the bill, None for an unknown account, or the error."""
    if trusted(answer).status == 404 and error_code(answer.body) == "unknown_account":
        return None
    if answer.status != 200:
        raise refusal(answer)
    body = _readable(answer.body)

    def made() -> Bill:
        if _text(body, "account") != account:
            raise Garbage("bill of another account")
        due = _amount(body, "amount_due")
        period = _optional_text(body, "period") or ""
        return Bill(
            name=_text(body, "name"),
            amount_due=due,
            debts=((period, due),) if due > 0 else (),
            invoice=_optional_text(body, "invoice"),
        )

    return _or_in_doubt(made)


def reversal_done(answer: Answer) -> None:
    """A reversal's answer: done (reversed, or never accepted: 404), or the error."""
    if trusted(answer).status == 404:
        return None
    if answer.status != 200:
        raise refusal(answer)
    status = _readable(answer.body).get("status")
    if status != "reversed":
        raise InDoubt(f"reversal answer with status {status!r}")
    return None


def payment_status(answer: Answer, payment_id: str) -> PaymentStatus | None:
    """A status check's answer: what the biller holds, None if it holds nothing."""
    if trusted(answer).status == 404:
        return None
    if answer.status != 200:
        raise refusal(answer)
    body = _readable(answer.body)

    def made() -> PaymentStatus:
        if _text(body, "payment_id") != payment_id:
            raise Garbage("status of another payment")
        status = _text(body, "status")
        if status not in PAYMENT_STATES:
            raise Garbage(f"unknown payment status {status!r}")
        return PaymentStatus(
            payment_id=payment_id,
            status=status,
            account=_text(body, "account"),
            amount=_amount(body, "amount"),
            biller_ref=_optional_text(body, "biller_ref") or "",
        )

    return _or_in_doubt(made)


def _or_in_doubt(make: Any) -> Any:
    try:
        return make()
    except Garbage as exc:
        raise InDoubt(f"unreadable answer: {exc}") from None


def _readable(body: bytes) -> dict[str, Any]:
    try:
        return _object(body)
    except Garbage as exc:
        raise InDoubt(f"unreadable answer: {exc}") from None


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Garbage(f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise Garbage(f"JSON {type(value).__name__}, not an object")
    return value


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise Garbage(f"{key} is {type(value).__name__}, not a string")
    return value


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Garbage(f"{key} is {type(value).__name__}, not a string")
    return value


def _amount(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Garbage(f"{key} is {value!r}, not an amount")
    return value
