"""Working keys as the switch keeps them: only under the LMK, with their check value.

The database holds every key encrypted under the HSM's LMK (``keys`` table);
a snapshot of the usable ones is kept in memory (``KeyRing``) so a MAC check
costs no database round trip. After a key change the old key stays usable
until its ``retire_at``, for messages already in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from hsm_sim.interface import KeyUnderLmk
from switch.ledger import schema as s

# Our key names and the HSM's key type codes (the LMK pair and variant they use).
HSM_KEY_TYPES: dict[str, str] = {
    "ZMK": "000",
    "ZPK": "001",
    "TMK": "002",
    "TPK": "002",
    "PVK": "002",
    "TAK": "003",
    "ZAK": "008",
    "CVK": "402",
}
ISSUER = "issuer"


def owner_of(acquirer_id: str, terminal_id: str) -> str:
    """``acquirer:terminal`` for a terminal, ``acquirer:`` for a host link."""
    return f"{acquirer_id}:{terminal_id}"


@dataclass(frozen=True)
class StoredKey:
    id: int
    owner: str
    name: str  # TMK, TPK, TAK, ...
    key: KeyUnderLmk
    state: str
    retire_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Usable:
    """One owner's keys of one kind: active ones, and retiring ones with their deadline."""

    active: tuple[KeyUnderLmk, ...]
    retiring: tuple[tuple[datetime, KeyUnderLmk], ...]


@dataclass(frozen=True)
class KeyRing:
    """The usable keys, indexed once per (owner, name): every MAC and PIN check asks."""

    keys: tuple[StoredKey, ...] = ()
    _usable: dict[tuple[str, str], _Usable] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        found: dict[tuple[str, str], list[StoredKey]] = {}
        for k in self.keys:
            found.setdefault((k.owner, k.name), []).append(k)
        for at, stored in found.items():
            active = tuple(k.key for k in stored if k.state == "active")
            retiring = tuple(
                (_aware(k.retire_at), k.key)
                for k in stored
                if k.state == "retiring" and k.retire_at is not None
            )
            self._usable[at] = _Usable(active, retiring)

    def active(self, owner: str, name: str) -> KeyUnderLmk | None:
        found = self._usable.get((owner, name))
        return found.active[0] if found and found.active else None

    def usable(self, owner: str, name: str, now: datetime) -> list[KeyUnderLmk]:
        """The active key first, then retiring keys still inside their grace period."""
        found = self._usable.get((owner, name))
        if found is None:
            return []
        if not found.retiring:
            return list(found.active)
        return [*found.active, *(key for until, key in found.retiring if until > now)]


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_k = s.keys.c


def load_keys(conn: Connection) -> KeyRing:
    rows = conn.execute(select(s.keys).where(_k.state.in_(("active", "retiring"))))
    return KeyRing(tuple(_stored(r) for r in rows))


def _stored(r) -> StoredKey:  # type: ignore[no-untyped-def]
    key = KeyUnderLmk(HSM_KEY_TYPES[r.key_type], r.value, r.kcv)
    return StoredKey(r.id, r.owner, r.key_type, key, r.state, r.retire_at)


def add_key(
    conn: Connection,
    owner: str,
    name: str,
    key: KeyUnderLmk,
    now: datetime,
    grace: float = 0.0,
) -> int:
    """Make ``key`` the owner's active key of this kind; the previous one retires
    (after ``grace`` seconds: it stays usable until then)."""
    if name not in HSM_KEY_TYPES:
        raise ValueError(f"unknown key kind {name!r}; one of {sorted(HSM_KEY_TYPES)}")
    previous = (_k.owner == owner) & (_k.key_type == name) & (_k.state == "active")
    if grace > 0:
        retire_at = now + timedelta(seconds=grace)
        conn.execute(update(s.keys).where(previous).values(state="retiring", retire_at=retire_at))
    else:
        conn.execute(update(s.keys).where(previous).values(state="retired", retire_at=now))
    return conn.execute(
        insert(s.keys)
        .values(
            owner=owner,
            key_type=name,
            value=key.value,
            kcv=key.kcv[:6],
            state="active",
            created_at=now,
        )
        .returning(_k.id)
    ).scalar_one()


def retire_key(conn: Connection, key_id: int, now: datetime) -> bool:
    result = conn.execute(
        update(s.keys)
        .where(_k.id == key_id, _k.state != "retired")
        .values(state="retired", retire_at=now)
    )
    return result.rowcount == 1


def expire_grace(conn: Connection, now: datetime) -> int:
    """Retire keys whose grace period is over."""
    result = conn.execute(
        update(s.keys).where(_k.state == "retiring", _k.retire_at <= now).values(state="retired")
    )
    return result.rowcount


def list_keys(conn: Connection) -> list[StoredKey]:
    return [_stored(r) for r in conn.execute(select(s.keys).order_by(_k.owner, _k.key_type, _k.id))]


def keys_version(conn: Connection) -> tuple[int, int]:
    """A cheap fingerprint of the usable keys: it changes when a key is added or retired.

    Other nodes (and worker processes) poll it to pick up a key change made
    elsewhere within seconds, without re-reading every key.
    """
    row = conn.execute(select(func.max(_k.id), func.count()).where(_k.state != "retired")).one()
    return (row[0] or 0, row[1])
