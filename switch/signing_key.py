"""The switch's own Ed25519 key: it signs the payment files billers receive.

Kept in the home as ``signing.key`` (64 hex digits, the raw seed, mode 0600),
beside ``hash.key``: made on the first start or by the first command that needs
it, then never changed, since billers verify with its public half (``billswitch
payments public-key``). Several nodes of one database must share the file (copy
it with ``hash.key``), or a payment file made again on another node carries
another signature.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switch.debt_signing import BadKey, private_key_from_hex
from switch.private_files import create_private, tighten

SIGNING_KEY_FILE = "signing.key"


class SigningKeyError(Exception):
    """The key file is there but unusable: one line naming it."""


def signing_key_path(home: Path) -> Path:
    return home / SIGNING_KEY_FILE


def load_or_create_signing_key(home: Path) -> Ed25519PrivateKey:
    """The home's signing key, made (atomically, 0600) if it has none yet."""
    path = signing_key_path(home)
    if not path.exists():
        create_private(path, os.urandom(32).hex().encode("ascii") + b"\n")
    tighten(path, "signing key")
    try:
        return private_key_from_hex(path.read_text(encoding="ascii"))
    except (BadKey, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"{path}: not a signing key ({exc})") from None
    except OSError as exc:
        raise SigningKeyError(f"{path}: {exc.strerror}") from None
