"""The in-memory key ring: active key first, retiring keys only inside their grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hsm_sim.interface import TAK, KeyUnderLmk
from switch.security.keystore import KeyRing, StoredKey

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OWNER = "12345678901:ATM00001"
ACTIVE = KeyUnderLmk(TAK, "U" + "1" * 32)
RETIRING = KeyUnderLmk(TAK, "U" + "2" * 32)
NAIVE = KeyUnderLmk(TAK, "U" + "3" * 32)
EXPIRED = KeyUnderLmk(TAK, "U" + "4" * 32)


def _ring() -> KeyRing:
    later = NOW + timedelta(seconds=60)
    return KeyRing(
        (
            StoredKey(1, OWNER, "TAK", RETIRING, "retiring", later),
            StoredKey(2, OWNER, "TAK", EXPIRED, "retiring", NOW - timedelta(seconds=1)),
            StoredKey(3, OWNER, "TAK", ACTIVE, "active", None),
            StoredKey(4, OWNER, "TAK", NAIVE, "retiring", later.replace(tzinfo=None)),
            StoredKey(5, OWNER, "TPK", ACTIVE, "retiring", None),
        )
    )


def test_usable_gives_the_active_key_then_retiring_keys_in_their_grace() -> None:
    assert _ring().usable(OWNER, "TAK", NOW) == [ACTIVE, RETIRING, NAIVE]


def test_grace_ends_at_retire_at() -> None:
    assert _ring().usable(OWNER, "TAK", NOW + timedelta(seconds=60)) == [ACTIVE]


def test_active_is_the_active_key_only() -> None:
    ring = _ring()
    assert ring.active(OWNER, "TAK") == ACTIVE
    assert ring.active(OWNER, "TPK") is None  # retiring, and without a deadline
    assert ring.usable(OWNER, "TPK", NOW) == []
    assert ring.active("nobody", "TAK") is None
    assert ring.usable("nobody", "TAK", NOW) == []


def test_usable_lists_are_the_callers_own() -> None:
    ring = KeyRing((StoredKey(1, OWNER, "TAK", ACTIVE, "active", None),))
    ring.usable(OWNER, "TAK", NOW).clear()
    assert ring.usable(OWNER, "TAK", NOW) == [ACTIVE]
