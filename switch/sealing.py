"""Biller secrets at rest: sealed with AES-256-GCM under a key derived from ``hash.key``.

An online biller's HMAC secret must be usable in clear by the switch (it signs
every call), so it cannot live in the HSM like terminal keys. Sealing it keeps
it out of database dumps, backups, replicas and of anyone with read access to
the ``billers`` table: opening it needs ``hash.key`` (in ``--home``, owner-only,
shared by the nodes of one database). The biller's code is the associated data,
so a sealed secret copied onto another biller's row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1:"
_INFO = b"billswitch biller secrets v1"  # a key of its own: never the hashing key itself


class SealError(Exception):
    """A sealed secret that does not open (another hash.key, or a damaged value)."""


class Sealer:
    def __init__(self, home_key: bytes) -> None:
        key = HKDF(hashes.SHA256(), 32, salt=None, info=_INFO).derive(home_key)
        self._aead = AESGCM(key)

    def seal(self, code: str, secret: bytes) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, secret, code.encode())
        return _VERSION + base64.b64encode(sealed).decode()

    def open(self, code: str, sealed: str) -> bytes:
        if not sealed.startswith(_VERSION):
            raise SealError(f"biller {code}: secret is not sealed by this version")
        raw = base64.b64decode(sealed[len(_VERSION) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], code.encode())
        except InvalidTag:
            raise SealError(
                f"biller {code}: secret does not open with this hash.key"
                " (every node of one database needs the same hash.key)"
            ) from None


def check_value(secret: bytes) -> str:
    """Six hex digits that identify a secret without revealing it (like a key's KCV), so an
    operator can compare it with the biller's copy; a listing shows this, never the secret."""
    return hmac.new(secret, b"billswitch check value", hashlib.sha256).hexdigest()[:6].upper()


def home_sealer(home: Path) -> Sealer:
    """The sealer of the database whose nodes use ``home``'s hash.key; never creates one
    (a fresh key would seal secrets no node can open)."""
    path = home / "hash.key"
    if not path.exists():
        raise SealError(
            f"no hash.key in {home} (biller secrets are sealed with it: use the --home of a"
            " node of this database, or copy its hash.key)"
        )
    return Sealer(bytes.fromhex(path.read_text().strip()))
