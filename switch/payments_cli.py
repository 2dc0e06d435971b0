"""``billswitch payments``: offline billers' payment files, and the key they are signed with.

``export`` makes a closed business day's files again (the close of day makes them
first): the same bytes however often or late it runs. ``public-key`` shows what
billers verify the files with; it makes the switch's key if the home has none yet.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from switch.debt_signing import fingerprint, public_key_pem, public_of
from switch.payment_files import PAYMENTS_DIR, PaymentFile, PaymentFileError, export_day
from switch.signing_key import load_or_create_signing_key, signing_key_path


class PaymentCommandError(Exception):
    """A day that cannot be exported or a wrong argument: one line."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a date, YYYY-MM-DD") from None


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    payments = sub.add_parser("payments", help="offline billers' signed payment files")
    actions = payments.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export",
        help="write every held biller's payment file of a closed business day (and its .sig),"
        " byte for byte what the close of day wrote",
        epilog="examples:\n"
        "  billswitch payments export --business-day 2026-11-21 --home /var/lib/billswitch\n"
        "  billswitch payments export --business-day 2026-11-21 --out /srv/outbox",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--business-day", type=_day, required=True, help="the day, YYYY-MM-DD (closed)"
    )
    export.add_argument(
        "--out",
        type=Path,
        help=f"folder of the files (default: HOME/{PAYMENTS_DIR}); each biller has its own"
        " folder in it",
    )
    public = actions.add_parser(
        "public-key",
        help="print the switch's Ed25519 public key (hex, PEM) and fingerprint, which billers"
        " verify payment files with",
        epilog="examples:\n"
        "  billswitch payments public-key --home /var/lib/billswitch\n"
        "  billswitch payments public-key --pem > switch.pem   (for openssl pkeyutl -verify)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    public.add_argument("--pem", action="store_true", help="print the PEM public key only")
    return payments


def run_export(args: argparse.Namespace, engine: Engine, home: Path) -> int:
    out_dir = args.out if args.out is not None else home / PAYMENTS_DIR
    key = load_or_create_signing_key(home)
    try:
        written = export_day(engine, args.business_day, out_dir, key)
    except PaymentFileError as exc:
        raise PaymentCommandError(str(exc)) from None
    except OSError as exc:  # the folder: not writable, not a folder, disk full
        where = exc.filename or out_dir
        raise PaymentCommandError(f"{where}: cannot write payment files: {exc.strerror}") from None
    if not written:
        print(f"business day {args.business_day}: no held billers, no payment files")
    for f in written:
        print(describe(f))
    print(f"signed with key {fingerprint(public_of(key))} ({signing_key_path(home)})")
    return 0


def describe(f: PaymentFile) -> str:
    return (
        f"{f.path}: {f.biller} {f.count} payments, total {f.total};"
        f" {f.reversals} earlier payments reversed, {f.reversed}"
    )


def run_public_key(home: Path, pem_only: bool = False) -> int:
    raw = public_of(load_or_create_signing_key(home))
    if pem_only:
        print(public_key_pem(raw), end="")
        return 0
    print(f"fingerprint {fingerprint(raw)}")
    print(f"hex {raw.hex()}")
    print(public_key_pem(raw), end="")
    return 0


def fail(message: str) -> int:
    print(f"billswitch payments: {message}", file=sys.stderr)
    return 2
