"""Request bodies of the biller API, checked into typed values (400 with a reason otherwise).

A body that is not JSON, not an object, or lacks a field or has one of the
wrong type is refused with a message naming the field, never a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from routing.biller_sim.errors import BadRequest

PAYMENT_ID = re.compile(r"[A-Za-z0-9._~:-]{1,64}")  # it appears in URLs: unreserved characters
ACCOUNT = re.compile(r"\S{1,32}")
CURRENCY = re.compile(r"[0-9]{3}")


@dataclass(frozen=True)
class FetchBody:
    account: str
    period: str | None


@dataclass(frozen=True)
class PaymentBody:
    payment_id: str
    account: str
    amount: int
    currency: str
    paid_at: str
    channel: str
    invoice: str | None

    def content(self) -> str:
        """What the same payment id must carry again to be the same payment (409 otherwise)."""
        fields = {
            "account": self.account,
            "amount": self.amount,
            "currency": self.currency,
            "paid_at": self.paid_at,
            "channel": self.channel,
            "invoice": self.invoice,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body is not a JSON object")
    return data


def fetch_body(body: bytes) -> FetchBody:
    data = json_object(body)
    return FetchBody(account=_text(data, "account", ACCOUNT), period=_optional_text(data, "period"))


def payment_body(body: bytes) -> PaymentBody:
    data = json_object(body)
    return PaymentBody(
        payment_id=payment_id(_text(data, "payment_id")),
        account=_text(data, "account", ACCOUNT),
        amount=_integer(data, "amount"),
        currency=_text(data, "currency", CURRENCY),
        paid_at=_time(data, "paid_at"),
        channel=_text(data, "channel"),
        invoice=_optional_text(data, "invoice"),
    )


def reversal_body(body: bytes) -> None:
    """A reversal's body is empty or a JSON object (its contents are not needed)."""
    if body.strip():
        json_object(body)


def payment_id(text: str) -> str:
    if not PAYMENT_ID.fullmatch(text):
        raise BadRequest("payment_id must be 1-64 of A-Z a-z 0-9 . _ ~ : -")
    return text


def _text(data: dict[str, Any], name: str, shape: re.Pattern[str] | None = None) -> str:
    value = data.get(name)
    if value is None:
        raise BadRequest(f"{name} is missing")
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    if shape is not None and not shape.fullmatch(value):
        raise BadRequest(f"{name} has the wrong form")
    return value


def _time(data: dict[str, Any], name: str) -> str:
    value = _text(data, name)
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} is not an RFC 3339 time") from None
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _integer(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if value is None:
        raise BadRequest(f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer (minor units)")
    return value
