"""Importing a held biller's signed debt list: size, signature, order, then one transaction.

The checks run cheapest and least trusting first: the file's size against
``debt_file_max_bytes`` (before a byte is read), the header (whose key to
check against), the Ed25519 signature over the file's exact bytes, then in
one transaction: the biller (exists, held, same currency, has a key), the file
not seen before (by SHA-256; the same file again changes nothing) and not
older than the biller's last applied list, and the list itself, streamed,
checked line by line and applied set-based (switch/ledger/debt_lists.py). Any
refusal leaves the database as it was.

The file is mapped (mmap), not read: Ed25519 needs the whole message at once,
and mapped pages are the kernel's page cache, dropped under pressure, not the
process's heap. The bytes applied are hashed again as they are parsed and
must be the bytes whose signature was checked (a file rewritten meanwhile is
refused).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from switch.debt_file import DebtFileError, Header, chunks_of, read_debts, read_header
from switch.debt_signing import BadKey, fingerprint, signature_from_bytes, verify
from switch.ledger import schema as s
from switch.ledger.debt_lists import Applied, apply_staged, drop_stage, first_duplicate, stage

MAX_SIGNATURE_FILE = 1024
_b, _f = s.billers.c, s.debt_files.c


class ImportRefused(Exception):
    """The file is not applied, and why (one line; nothing was changed)."""


@dataclass(frozen=True)
class Outcome:
    """What an import did: ``applied`` None when the same file had been applied before."""

    header: Header
    digest: str
    applied: Applied | None
    applied_before: datetime | None = None


def import_file(engine: Engine, path: Path, max_bytes: int, now: datetime) -> Outcome:
    """Check and apply the debt list at ``path`` (signature at ``path`` + ``.sig``)."""
    with _mapped(path, max_bytes) as data:
        header = _header(data)
        signature = _signature(path)
        digest = hashlib.sha256(data).hexdigest()
        with engine.begin() as conn:
            key = _biller_key(conn, header)
            if not verify(key, signature, data):
                raise ImportRefused(
                    f"{path}.sig: not {header.biller}'s signature of this file (key"
                    f" {fingerprint(key)}): the file was changed, or signed with another key"
                )
            before = _applied_at(conn, digest)
            if before is not None:
                return Outcome(header, digest, None, before)
            _check_newer(conn, header)
            try:
                applied = _apply(conn, header, data, digest)
            finally:
                drop_stage(conn)
            conn.execute(
                insert(s.debt_files).values(
                    biller_code=header.biller,
                    digest=digest,
                    mode=header.mode,
                    generated=header.generated,
                    debts=applied.lines,
                    applied_at=now,
                )
            )
    return Outcome(header, digest, applied)


@contextmanager
def _mapped(path: Path, max_bytes: int) -> Iterator[Any]:
    """The file's bytes, mapped read-only; a file over ``max_bytes`` is refused unread."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ImportRefused(f"{path}: {exc.strerror}") from None
    with f:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImportRefused(
                f"{path}: {size} bytes, more than debt_file_max_bytes ({max_bytes}):"
                " refused unread (split it, or raise the setting)"
            )
        if size == 0:
            raise ImportRefused(f"{path}: empty")
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield data
        finally:
            data.close()


def _header(data: Any) -> Header:
    try:
        return read_header(chunks_of(data))
    except DebtFileError as exc:
        raise ImportRefused(str(exc)) from None


def _signature(path: Path) -> bytes:
    sig_path = Path(f"{path}.sig")
    try:
        with sig_path.open("rb") as f:
            raw = f.read(MAX_SIGNATURE_FILE + 1)
    except FileNotFoundError:
        raise ImportRefused(
            f"{sig_path}: no signature (a debt file is imported only with its detached"
            " Ed25519 signature beside it)"
        ) from None
    except OSError as exc:
        raise ImportRefused(f"{sig_path}: {exc.strerror}") from None
    try:
        return signature_from_bytes(raw)
    except BadKey as exc:
        raise ImportRefused(f"{sig_path}: {exc}") from None


def _biller_key(conn: Connection, header: Header) -> bytes:
    """The biller's registered key; its row locked, so imports of one biller take turns."""
    row = conn.execute(
        select(_b.kind, _b.currency, _b.public_key)
        .where(_b.code == header.biller)
        .with_for_update()
    ).first()
    if row is None:
        raise ImportRefused(f"unknown biller {header.biller} (see: billswitch billers list)")
    if row.kind != "held":
        raise ImportRefused(
            f"biller {header.biller} is {row.kind}: debt files are for held billers only"
        )
    if row.currency != header.currency:
        raise ImportRefused(
            f"currency {header.currency}: biller {header.biller}'s currency is {row.currency}"
        )
    if not row.public_key:
        raise ImportRefused(
            f"biller {header.biller} has no key for debt files"
            " (register it: billswitch billers set-key)"
        )
    return bytes.fromhex(row.public_key)


def _applied_at(conn: Connection, digest: str) -> datetime | None:
    return conn.execute(select(_f.applied_at).where(_f.digest == digest)).scalar()


def _check_newer(conn: Connection, header: Header) -> None:
    """A list older than (or as old as) the last one applied would undo newer news."""
    last = conn.execute(
        select(func.max(_f.generated)).where(_f.biller_code == header.biller)
    ).scalar()
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)  # SQLite keeps no offset; written in UTC
    if last is not None and header.generated <= last:
        raise ImportRefused(
            f"generated {header.generated:%Y-%m-%dT%H:%M:%SZ} is not newer than"
            f" {header.biller}'s last applied list ({last:%Y-%m-%dT%H:%M:%SZ}): refused"
        )


def _apply(conn: Connection, header: Header, data: Any, digest: str) -> Applied:
    hashed = hashlib.sha256()
    try:
        _, debts = read_debts(_hashing(chunks_of(data), hashed))
        lines = stage(conn, debts)
    except DebtFileError as exc:
        raise ImportRefused(str(exc)) from None
    if hashed.hexdigest() != digest:
        raise ImportRefused("the file changed while it was imported: refused")
    duplicate = first_duplicate(conn)
    if duplicate is not None:
        raise ImportRefused(f"line {duplicate.line}: {duplicate}")
    return apply_staged(conn, header.biller, header.mode, header.generated, lines)


def _hashing(chunks: Iterator[bytes], hashed: Any) -> Iterator[bytes]:
    for chunk in chunks:
        hashed.update(chunk)
        yield chunk
