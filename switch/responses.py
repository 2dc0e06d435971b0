"""Response codes (DE 39) of the host interface, as one table."""

from __future__ import annotations

APPROVED = "00"

RESPONSE_CODES: dict[str, str] = {
    "00": "approved / done",
    "03": "unknown acquirer or terminal, or terminal not signed on",
    "05": "declined by the biller",
    "12": "message type or processing code not supported",
    "13": "amount invalid",
    "14": "customer account unknown at the biller",
    "25": "reversal of an original the switch does not have",
    "30": "format error",
    "51": "insufficient funds",
    "55": "incorrect PIN",
    "63": "security violation: MAC missing or wrong",
    "68": "the biller or issuer answered too late",
    "75": "PIN tries exceeded",
    "91": "biller or issuer unreachable, or the switch is overloaded",
    "92": "no route: unknown biller code",
    "94": "duplicate transmission with different content",
    "95": "reconciliation totals differ",
    "96": "system malfunction; nothing was recorded",
}
