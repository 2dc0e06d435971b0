"""Ed25519 signatures of billers' debt files: keys as billers hand them over, fingerprints,
detached ``.sig`` files. The switch's own payment files (switch/payment_files.py) are
signed and shown with the same helpers, so billers meet one format both ways.

A held biller signs each debt list with its private key; the switch keeps only
the public half (``billers.public_key``, 64 hex digits) and checks the file's
exact bytes against it before reading a line of it. Operators compare keys by
fingerprint (the first 16 hex digits of SHA-256 of the raw key), never by
pasting keys around.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

RAW_KEY = 32  # bytes of an Ed25519 public or private key
RAW_SIGNATURE = 64
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
_HEX_SIGNATURE = re.compile(rb"[0-9A-Fa-f]{128}")
MAX_KEY_FILE = 16 * 1024  # a PEM public key is about 113 bytes


class BadKey(ValueError):
    """A key or signature file that is not what it should be: one line, saying why."""


def public_key_from_text(text: str) -> bytes:
    """The raw 32-byte key of a PEM ``PUBLIC KEY`` (Ed25519) or of 64 hex digits."""
    text = text.strip()
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    if "-----BEGIN" not in text:
        raise BadKey("neither a PEM public key nor 64 hex digits (a raw Ed25519 key)")
    if "PRIVATE KEY" in text:
        raise BadKey("this is a PRIVATE key: give the biller's public key only")
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise BadKey("not a PEM public key that can be read") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadKey(f"a {type(key).__name__.lstrip('_')}, not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def read_public_key(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise BadKey(f"{path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise BadKey(f"{path}: larger than a key file ({MAX_KEY_FILE} bytes)")
    try:
        return public_key_from_text(data.decode("ascii"))
    except UnicodeDecodeError:
        raise BadKey(f"{path}: neither a PEM public key nor 64 hex digits") from None
    except BadKey as exc:
        raise BadKey(f"{path}: {exc}") from None


def fingerprint(raw_public_key: bytes) -> str:
    """What ``billers list`` shows of a key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def signature_from_bytes(data: bytes) -> bytes:
    """A ``.sig`` file's signature: 64 raw bytes (``openssl pkeyutl -sign -rawin``) or
    128 hex digits (with or without a final newline)."""
    if len(data) == RAW_SIGNATURE:
        return data
    if _HEX_SIGNATURE.fullmatch(data.strip()):
        return bytes.fromhex(data.strip().decode("ascii"))
    raise BadKey(f"not an Ed25519 signature (64 raw bytes or 128 hex digits; {len(data)} bytes)")


def verify(raw_public_key: bytes, signature: bytes, data: bytes | memoryview) -> bool:
    """Whether ``signature`` is the key's Ed25519 signature (RFC 8032) of ``data``."""
    try:
        Ed25519PublicKey.from_public_bytes(raw_public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def private_key_from_hex(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if not _HEX_KEY.fullmatch(text):
        raise BadKey("a private key is 64 hex digits (the raw 32-byte Ed25519 seed)")
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))


def sign(private_key: Ed25519PrivateKey, data: bytes | memoryview) -> bytes:
    return private_key.sign(data)


def public_key_pem(raw_public_key: bytes) -> str:
    """The raw key as a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo), what openssl reads."""
    key = Ed25519PublicKey.from_public_bytes(raw_public_key)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def public_of(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
