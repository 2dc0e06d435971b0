"""What the switch and a biller exchange, whatever the biller's connection kind.

Adapters (``routing/adapters``) return these values and raise these errors;
the switch's steps map each error to its response code and never see HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Endpoint:
    """How to reach one online biller (its row in the ``billers`` table)."""

    url: str  # base URL, e.g. http://127.0.0.1:8090/TEL01
    secret: bytes = field(repr=False)  # HMAC-SHA256 shared secret: never in a log line
    timeout: float = 3.0  # seconds to wait for fetch and payment answers
    max_in_flight: int = 64  # calls at once; more are refused at once (91)


@dataclass(frozen=True)
class PaymentRequest:
    """A payment as told to a biller; ``payment_id`` is its idempotency key there."""

    payment_id: str
    account: str
    amount: int  # minor units
    currency: str  # ISO 4217 numeric
    paid_at: datetime
    channel: str  # ATM, POS or HOST
    invoice: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A biller's acceptance of a payment; ``receipt`` and ``token`` go to DE 48 VR / TK."""

    biller_ref: str = ""
    receipt: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class PaymentStatus:
    """What a biller holds of one payment (the status check before deciding a reversal)."""

    payment_id: str
    status: str  # accepted or reversed
    account: str
    amount: int
    biller_ref: str = ""


class BillerError(Exception):
    """A biller call that did not succeed; ``code`` is the ISO response code it costs."""

    code = "05"
    moved = False  # True where the biller may hold the payment: the doubt must be settled


class UnknownAccount(BillerError):
    """The biller does not know the account."""

    code = "14"


class AmountNotAccepted(BillerError):
    """The biller refused the amount."""

    code = "13"


class AccountClosed(BillerError):
    """The account is closed at the biller."""

    code = "05"


class Refused(BillerError):
    """Any other 4xx answer: the biller refused the request as it stands."""

    code = "05"


class Conflict(BillerError):
    """The same payment id with other content (409): a bug on one side, never retried."""

    code = "05"


class ReversedThere(BillerError):
    """A payment answered with its id reversed: the biller reversed that payment before
    (the settlement of a 68 that came before its advice) and holds it so. Under that id
    it never takes it again; an operator decides."""

    code = "05"


class Unavailable(BillerError):
    """Refused connection, 5xx before acceptance, open circuit or too many calls in flight:
    the biller has not taken the payment."""

    code = "91"


class InDoubt(BillerError):
    """The request went out and no usable answer came (timeout, cut body, garbage, a bad
    signature on the answer): the biller may hold the payment."""

    code = "68"
    moved = True


# The biller API's error codes (billers.md "Errors") and what each means here.
ERRORS: dict[str, type[BillerError]] = {
    "unknown_account": UnknownAccount,
    "amount_not_accepted": AmountNotAccepted,
    "account_closed": AccountClosed,
    "conflict": Conflict,
}
