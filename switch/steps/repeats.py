"""Repeats and retransmissions: a request the switch has answered gets that answer again.

The spec recognises an exact repeat before any check but the MAC: a repeat of an
approved payment is approved again though the terminal has since signed off, a
biller setting changed or the card got blocked. Looking the stored request up on
every payment would cost the hot path a database read, so it is looked up first
only where a repeat is announced: a repeat MTI (xx01). Any other money message is
looked up only when a later check declines it; an approved one meets its stored
request in the ledger writer, which answers it from there. (Looking up every PIN
payment first, so a plain retransmission of a wrong PIN would not count a second
try, halved the on-us rate in the benchmark: a retransmission without the repeat
digit counts its wrong PIN again, which errs on the side of the cardholder's
tries, and still gets its stored answer.)

One rule everywhere (the writer's too): same identity and content, the stored
response data elements; same identity, other content, 94.
"""

from __future__ import annotations

import structlog

from switch.errors import Duplicate
from switch.ledger.queries import stored_request
from switch.services import Services
from switch.steps.payment import request_key
from switch.transaction import Transaction

log = structlog.get_logger(__name__)


async def answer_stored(t: Transaction, sv: Services) -> dict[str, str] | None:
    """Step, right after the MAC check of a money message: a repeat or a PIN payment
    that was answered before gets the stored answer (or 94) before any other check."""
    t.replayable = True
    if t.request.get("t") == t.mti:
        return None
    return await stored_answer(t, sv)


async def stored_answer(t: Transaction, sv: Services) -> dict[str, str] | None:
    """The stored response of this request's identity, None if there is none; a
    Duplicate (94) if that identity was used for other content."""
    t.looked_up = True
    stored = await sv.reads.run(stored_request, request_key(t))
    if stored is None:
        return None
    if stored.request_hash != sv.hasher.request(t.mti, t.request):
        raise Duplicate("same identity as an earlier request, different content")
    return dict(stored.response)


# Declines about the switch, not the request: overload (91: shedding must stay cheap and
# immediate, and the database is what is overloaded) and malfunction (96: the database
# may be what failed). A look-up would wait on the very thing in trouble.
_OWN_STATE = frozenset({"91", "96"})


async def instead_of_decline(t: Transaction, sv: Services, code: str) -> dict[str, str] | None:
    """What to answer instead of the decline ``code``, if this request was answered before:
    its stored response, or a 94. None when it was not, or cannot be known now (the
    decline stands then: it moved nothing)."""
    if not t.replayable or t.looked_up or code in _OWN_STATE:
        return None
    try:
        return await stored_answer(t, sv)
    except Duplicate:
        return t.response(Duplicate.code, {})
    except Exception as exc:  # read queue full, database unavailable: keep the decline
        log.warning("stored answer not looked up", mti=t.mti, error=type(exc).__name__)
        return None
