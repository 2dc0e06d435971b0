"""Card data protection: what of a PAN may be kept, and a keyed hash for search.

The full PAN, track data and PIN blocks are never stored or logged. A plain
hash of a PAN would be reversible by trying every number of a BIN, so both
the PAN hash and the request content hash are keyed (HMAC-SHA256).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path

# A request's financial content (spec section 5, "Identity"): processing code, amount,
# currency, bill data, PAN and, for a reversal, what it reverses and what is kept (DE 90,
# 95); the MTI is added as its base MTI (a repeat counts as its original). Everything else
# stays out: the identity itself (DE 7, 11, 32, 41: the request key), what a terminal may
# change on a repeat (DE 12, 13, 37...), MACs and bitmaps, and the sensitive
# authentication data (DE 35 track 2, DE 52 PIN block, DE 53): an ISO-3 PIN block is
# re-encrypted on a repeat, and nothing derived from them may be kept.
CONTENT = ("2", "3", "4", "48", "49", "90", "95")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits, the rest as ``*``."""
    if len(pan) < 13:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


class Hasher:
    def __init__(self, key: bytes) -> None:
        # Keyed once: copying a keyed HMAC skips the key set-up every request would repeat.
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def _hash(self, data: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(data)
        return mac.hexdigest()

    def pan(self, pan: str) -> str:
        return self._hash(pan.encode())

    def request(self, base_mti: str, fields: Mapping[str, str]) -> str:
        """The keyed hash of a request's financial content (``CONTENT``), for duplicates."""
        content = {de: fields[de] for de in CONTENT if de in fields}
        content["t"] = base_mti
        return self._hash(_ENCODER.encode(content).encode())


def load_or_create_key(path: Path) -> bytes:
    """The node's hashing key; created once, readable by the owner only.

    Several nodes on one database must share this file (copy it), or their
    hashes will not match.
    """
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key
