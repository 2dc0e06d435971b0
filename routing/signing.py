"""Request signatures of the online biller API (../shared/spec/billers.md).

Both sides sign ``timestamp + "\\n" + body`` with HMAC-SHA256 under the biller's
shared secret; a GET signs an empty body. The receiver refuses a timestamp
outside its window so a captured request cannot be replayed later, and
compares signatures in constant time so their bytes cannot be guessed one by one.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

WINDOW = timedelta(minutes=5)  # how far a timestamp may be from the receiver's clock


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with seconds, as sent in ``X-Timestamp``."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(secret: bytes, stamp: str, body: bytes) -> str:
    """The hex ``X-Signature`` of one request or answer."""
    return hmac.digest(secret, stamp.encode("ascii") + b"\n" + body, hashlib.sha256).hex()


def headers(secret: bytes, body: bytes, now: datetime) -> dict[str, str]:
    """``X-Timestamp`` and ``X-Signature`` for a message sent now."""
    stamp = timestamp(now)
    return {"X-Timestamp": stamp, "X-Signature": sign(secret, stamp, body)}


def verify(
    secret: bytes,
    stamp: str | None,
    body: bytes,
    signature: str | None,
    now: datetime,
    window: timedelta = WINDOW,
) -> bool:
    """Whether a message's signature is right and its timestamp fresh."""
    if not stamp or not signature:
        return False
    try:
        sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    if sent.tzinfo is None or abs(now - sent) > window:
        return False
    try:
        stamp.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature.lower())
