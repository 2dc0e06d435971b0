"""Signatures of the online biller API: the spec's string, freshness, constant-time compare."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from routing import signing

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
SECRET = b"test-secret"
BODY = b'{"account": "5550001"}'


def test_signature_is_hmac_sha256_of_timestamp_newline_body() -> None:
    stamp = signing.timestamp(NOW)
    assert stamp == "2026-11-21T10:00:00Z"
    expected = hmac.new(SECRET, b"2026-11-21T10:00:00Z\n" + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, stamp, BODY) == expected


def test_fresh_and_right_signature_verifies() -> None:
    h = signing.headers(SECRET, BODY, NOW)
    later = NOW + timedelta(seconds=30)
    assert signing.verify(SECRET, h["X-Timestamp"], BODY, h["X-Signature"], later)
    assert signing.verify(SECRET, h["X-Timestamp"], BODY, h["X-Signature"].upper(), NOW)


def test_wrong_body_secret_or_signature_fails() -> None:
    h = signing.headers(SECRET, BODY, NOW)
    assert not signing.verify(SECRET, h["X-Timestamp"], BODY + b" ", h["X-Signature"], NOW)
    assert not signing.verify(b"other", h["X-Timestamp"], BODY, h["X-Signature"], NOW)
    assert not signing.verify(SECRET, h["X-Timestamp"], BODY, "0" * 64, NOW)
    assert not signing.verify(SECRET, h["X-Timestamp"], BODY, None, NOW)


def test_stale_future_or_malformed_timestamp_fails() -> None:
    for moved in (timedelta(minutes=6), -timedelta(minutes=6)):
        h = signing.headers(SECRET, BODY, NOW + moved)
        assert not signing.verify(SECRET, h["X-Timestamp"], BODY, h["X-Signature"], NOW)
    for stamp in ("", "yesterday", "2026-11-21T10:00:00", "2026-11-21T10:00:00Zé"):
        assert not signing.verify(SECRET, stamp, BODY, signing.sign(SECRET, "x", BODY), NOW)
