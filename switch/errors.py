"""Errors that end a transaction, each carrying the response code it answers with.

A step raises one of these; the pipeline turns it into DE 39. Messages never
contain card data: they name the field or the rule, not the value.
"""

from __future__ import annotations


class Decline(Exception):
    """A transaction ends with ``code`` instead of approval."""

    code = "96"
    alert = False  # an operator must act (e.g. load a missing key): logged as an error

    def __init__(self, reason: str = "", code: str | None = None) -> None:
        super().__init__(reason or self.__class__.__doc__ or "")
        if code is not None:
            self.code = code


class UnknownParty(Decline):
    """Unknown acquirer or terminal, or the terminal has not signed on."""

    code = "03"


class NotSupported(Decline):
    """Message type or processing code not supported."""

    code = "12"


class InvalidAmount(Decline):
    """Amount zero, in the wrong currency or outside the biller's rules."""

    code = "13"


class UnknownAccount(Decline):
    """The customer account is unknown at the biller."""

    code = "14"


class FormatError(Decline):
    """A mandatory field is missing or malformed."""

    code = "30"

    def __init__(self, field: str, reason: str = "missing or malformed") -> None:
        super().__init__(f"DE {field}: {reason}")
        self.field = field


class SecurityViolation(Decline):
    """MAC missing or wrong."""

    code = "63"


class IncorrectPin(Decline):
    """The PIN does not verify."""

    code = "55"


class PinTriesExceeded(Decline):
    """Too many wrong PINs: the card is blocked for PIN use."""

    code = "75"


class Overloaded(Decline):
    """The switch sheds load: its ledger or read queue is full; nothing was recorded."""

    code = "91"


class NoRoute(Decline):
    """No route: the biller code is unknown."""

    code = "92"


class Duplicate(Decline):
    """Same identity as an earlier request, different content."""

    code = "94"


class SystemFailure(Decline):
    """The ledger or another part is unavailable; nothing was recorded."""

    code = "96"


class MissingKey(SystemFailure):
    """A key the switch needs for this terminal or the issuer is not loaded: the switch's
    own configuration fails, not the request. The reason names the owner and key type,
    never key material."""

    alert = True
