"""The biller API's refusals: each a type carrying its HTTP status and error code.

The server answers every one as ``{"error": code, "message": ...}`` (billers.md
"Errors"), signed like any other answer.
"""

from __future__ import annotations


class ApiError(Exception):
    """A refusal; ``message`` says why, for the human reading the switch's log."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class BadRequest(ApiError):
    """Not JSON, a missing field or a field of the wrong type."""


class BadSignature(ApiError):
    status = 401
    code = "bad_signature"


class Forbidden(ApiError):
    """The control API from anywhere but the loopback."""

    status = 403
    code = "forbidden"


class UnknownBiller(ApiError):
    status = 404
    code = "unknown_biller"


class NotFound(ApiError):
    """A path the API does not have."""

    status = 404
    code = "not_found"


class UnknownAccount(ApiError):
    status = 404
    code = "unknown_account"


class UnknownPayment(ApiError):
    """Status or reversal of a payment this biller never accepted."""

    status = 404
    code = "unknown_payment"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"


class Conflict(ApiError):
    """The same payment id with other content."""

    status = 409
    code = "conflict"


class AmountNotAccepted(ApiError):
    status = 422
    code = "amount_not_accepted"


class AccountClosed(ApiError):
    status = 422
    code = "account_closed"


class Unavailable(ApiError):
    """A 5xx injected by a fault: the biller did nothing with the request."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


# The refusals a ``decline`` fault may force, by their code.
DECLINES: dict[str, type[ApiError]] = {
    kind.code: kind for kind in (AmountNotAccepted, AccountClosed, UnknownAccount)
}
