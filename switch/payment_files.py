"""Payment files: what a closed business day paid each offline biller, signed by the switch.

One file per held biller per business day, ``OUT/<BILLER>/<BILLER>-<YYYY-MM-DD>.xml``
(``<payments>`` of ../shared/spec/billers.md) with ``.xml.sig`` beside it: the
Ed25519 signature (64 raw bytes) of the file's exact bytes by the switch's key
(switch/signing_key.py). A day without payments still gets its file (count 0), so a
biller can tell "nothing paid" from "file lost".

The content is a pure function of the ledger for that day (switch/ledger/
day_payments.py): rows in payment id order, attributes in a fixed order, nothing of
the export run itself (no clock, no host). Ed25519 signatures are deterministic, so
making a day's files again gives the same bytes, ``.sig`` included. Only a closed
day is exported: an open one may still change.

Memory stays bounded however many payments: rows stream from a cursor into a body
file as they come; the header (which states the count and total) is written
once they are known, and the body copied after it inside the kernel. Ed25519
(RFC 8032, pure) needs the whole message twice and cannot sign a stream, so the
finished file is mapped (mmap) rather than read: its pages are the kernel's page
cache, counted in the process's RSS while mapped but never copied to the heap.

Each file appears whole or not at all (written beside it, then renamed); the
``.sig`` is renamed into place last, so a biller's pick-up that waits for it never
reads a half-made pair. Runs in any thread: it only needs an engine.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine

from switch.atomic_files import sync_folder
from switch.debt_signing import sign
from switch.ledger.day_payments import (
    DayPayment,
    day_payments,
    day_state,
    late_reversals,
    offline_billers,
)
from switch.ledger.sql import is_postgres
from switch.private_files import HOME_MODE
from switch.signing_key import load_or_create_signing_key
from switch.steps.payment import receipt_number

PAYMENTS_DIR = "payments"  # under the home, unless told otherwise
BUFFER = 1 << 20
_SAFE_CODE = re.compile(r"[A-Za-z0-9_-]{1,8}")
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "\t": "&#9;",
    "\n": "&#10;",
    "\r": "&#13;",
}
_NEEDS_ESCAPE = re.compile(r'[&<>"\t\n\r]|[^\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')


class PaymentFileError(Exception):
    """A day that cannot be exported (unknown, still open) or a biller code unfit for a
    file name: one line."""


@dataclass(frozen=True)
class PaymentFile:
    """One file written: where, and what it says."""

    biller: str
    path: Path
    signature: Path
    count: int
    total: int
    reversals: int
    reversed: int


def export_payment_files(
    engine: Engine, business_day: date, out_dir: Path, signing_key: Ed25519PrivateKey
) -> list[Path]:
    """Write (or write again, the same bytes) every offline biller's payment file of a
    closed ``business_day`` under ``out_dir``; returns the files' paths (each with its
    ``.sig``). Raises PaymentFileError for a day the ledger never had or one still open.

    ``engine`` should have no statement timeout (maintenance timeouts, as the CLI's):
    a biller's day is one query, whose first fetch may sort a million rows."""
    return [f.path for f in export_day(engine, business_day, out_dir, signing_key)]


def export_day(
    engine: Engine, business_day: date, out_dir: Path, signing_key: Ed25519PrivateKey
) -> list[PaymentFile]:
    """``export_payment_files`` with what each file holds (for the CLI's report)."""
    with engine.connect() as conn:
        _check_day(conn, business_day)
        billers = offline_billers(conn)
        written = [
            _export_biller(conn, code, currency, business_day, out_dir, signing_key)
            for code, currency in billers
        ]
    return written


def file_path(out_dir: Path, biller: str, day: date) -> Path:
    return out_dir / biller / f"{biller}-{day.isoformat()}.xml"


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + ".sig")


def _check_day(conn: Connection, day: date) -> None:
    state = day_state(conn, day)
    if state is None:
        raise PaymentFileError(
            f"business day {day}: unknown to the ledger (no payment was ever posted on it)"
        )
    if state != "closed":
        raise PaymentFileError(
            f"business day {day}: still open (its payments may change until the cut-over closes it)"
        )


def _export_biller(
    conn: Connection,
    biller: str,
    currency: str,
    day: date,
    out_dir: Path,
    key: Ed25519PrivateKey,
) -> PaymentFile:
    if not _SAFE_CODE.fullmatch(biller):
        raise PaymentFileError(f"biller code {biller!r}: not usable as a file name")
    path = file_path(out_dir, biller, day)
    path.parent.mkdir(parents=True, exist_ok=True, mode=HOME_MODE)
    with _temp(path, ".body.tmp") as body, _temp(path, ".xml.tmp") as whole:
        _unbounded(conn)
        with body.open("w", encoding="utf-8", newline="\n", buffering=BUFFER) as out:
            count, total = _write_payments(out, day_payments(conn, biller, day))
            reversals, reversed_ = _write_reversals(out, conn, biller, day)
        conn.rollback()  # the reads are done: no transaction held open while signing
        header = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<payments biller="{biller}" business_day="{day.isoformat()}"'
            f' currency="{_attr(currency)}" count="{count}" total="{total}">\n'
        )
        _assemble(whole, header, body, "</payments>\n")
        signature = _sign_file(whole, key)
        with _temp(path, ".sig.tmp") as sig:
            _write_synced(sig, signature)
            os.replace(whole, path)
            os.replace(sig, signature_path(path))
    sync_folder(path.parent)
    return PaymentFile(biller, path, signature_path(path), count, total, reversals, reversed_)


def _unbounded(conn: Connection) -> None:
    """A node's engine bounds each statement (5 s); a biller's day is one query that may
    sort a million rows, so its transaction (ended by the rollback after the reads) has
    no bound."""
    if is_postgres(conn):
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")


def write_day_files(engine: Engine, business_day: date, home: Path) -> None:
    """The close-of-day task: the day's payment files under ``<home>/payments``, signed
    with the switch's key (made if missing)."""
    key = load_or_create_signing_key(home)
    export_payment_files(engine, business_day, home / PAYMENTS_DIR, key)


def _write_payments(out: IO[str], payments: Iterator[DayPayment]) -> tuple[int, int]:
    count = total = 0
    for p in payments:
        out.write(_payment_line(p))
        count += 1
        total += p.amount
    return count, total


def _payment_line(p: DayPayment) -> str:
    """One ``<payment/>``: attributes always in this order; rrn and invoice only when
    known (several debts paid: their invoices, oldest period first, space-separated)."""
    line = (
        f'  <payment id="{receipt_number(p.payment_id)}" account="{_attr(p.account)}"'
        f' amount="{p.amount}" paid_at="{_utc(p.paid_at)}" channel="{_attr(p.channel)}"'
        f' acquirer="{_attr(p.acquirer_id)}"'
    )
    if p.rrn:
        line += f' rrn="{_attr(p.rrn)}"'
    if p.invoices:
        line += f' invoice="{_attr(" ".join(p.invoices))}"'
    return line + "/>\n"


def _write_reversals(out: IO[str], conn: Connection, biller: str, day: date) -> tuple[int, int]:
    count = total = 0
    for r in late_reversals(conn, biller, day):
        out.write(f'  <reversal id="{receipt_number(r.payment_id)}" amount="{r.amount}"/>\n')
        count += 1
        total += r.amount
    return count, total


def _attr(value: str) -> str:
    """An attribute value as XML 1.0 takes it: markup escaped, characters XML cannot
    hold at all (control characters) as U+FFFD."""
    if not _NEEDS_ESCAPE.search(value):
        return value
    return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES.get(m.group(), "\ufffd"), value)


def _utc(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second (SQLite gives naive UTC, PostgreSQL an offset)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _assemble(whole: Path, header: str, body: Path, footer: str) -> None:
    """``whole`` = header + body + footer, the body copied by the kernel where it can."""
    with whole.open("wb") as out, body.open("rb") as src:
        out.write(header.encode("utf-8"))
        out.flush()
        _copy(src, out, body.stat().st_size)
        out.write(footer.encode("utf-8"))
        out.flush()
        os.fsync(out.fileno())


def _copy(src: IO[bytes], out: IO[bytes], size: int) -> None:
    """Append ``size`` bytes of ``src`` to ``out`` (both at their file offsets)."""
    copied = 0
    try:
        while copied < size:
            done = os.copy_file_range(src.fileno(), out.fileno(), size - copied)
            if done == 0:
                break
            copied += done
    except OSError:
        pass  # not on this file system: the rest through user space, 1 MiB at a time
    if copied < size:
        src.seek(copied)
        out.seek(0, os.SEEK_END)
        shutil.copyfileobj(src, out, BUFFER)


def _sign_file(path: Path, key: Ed25519PrivateKey) -> bytes:
    """The Ed25519 signature of the file, mapped rather than read (see the docstring)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return sign(key, data)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def _temp(path: Path, suffix: str) -> Iterator[Path]:
    """A new private file beside ``path`` (so a rename is atomic), removed unless renamed."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)
