"""``billswitch debts``: import a held biller's signed debt list; sign a test one.

``import`` is what an operator runs on each file a held biller sends
(switch/debt_import.py says what is checked, in which order). ``sign`` is for
tests and the demo: it signs with a private key given as hex, which is what
the demo biller UTIL01's published TEST-ONLY key is (README); a real biller
signs on its own side and the switch never sees its private key.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from switch.debt_import import ImportRefused, Outcome, import_file
from switch.debt_signing import BadKey, fingerprint, private_key_from_hex, public_of, sign


class DebtCommandError(Exception):
    """A refused file or a wrong argument: one line."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    debts = sub.add_parser("debts", help="import held billers' signed debt lists")
    actions = debts.add_subparsers(dest="action", required=True)
    imp = actions.add_parser(
        "import",
        help="check FILE.sig against the biller's key, check the list, apply it whole or not"
        " at all (the same file twice changes nothing; an older one is refused)",
        epilog="examples:\n"
        "  billswitch debts import /srv/in/UTIL01-20261101.xml --home /var/lib/billswitch\n"
        "  billswitch debts import util01.xml --db postgresql+psycopg2://billswitch@db1/switch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", type=Path, help="the debt list (XML); its signature is FILE.sig")
    sig = actions.add_parser(
        "sign",
        help="write FILE.sig, an Ed25519 signature of FILE (tests and the demo)",
        epilog="example (UTIL01's TEST-ONLY key, published in the README):\n"
        "  billswitch debts sign util01.xml --key-hex c63e3564e64d593b17a6abfaad6359ec"
        "c6d284349ed017bdb682db79de3f8179",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sig.add_argument("file", type=Path, help="the file to sign")
    sig.add_argument(
        "--key-hex",
        help="the private key, 64 hex digits (or BILLSWITCH_DEBT_KEY: ps shows arguments)",
    )
    return debts


def run_import(args: argparse.Namespace, engine: Engine, max_bytes: int) -> int:
    try:
        outcome = import_file(engine, args.file, max_bytes, datetime.now(UTC))
    except ImportRefused as exc:
        raise DebtCommandError(f"{args.file}: refused, nothing changed: {exc}") from None
    print(describe(args.file, outcome))
    return 0


def describe(path: Path, outcome: Outcome) -> str:
    h = outcome.header
    what = f"{path}: {h.biller} {h.mode} list of {h.generated:%Y-%m-%dT%H:%M:%SZ}"
    if outcome.applied is None:
        when = outcome.applied_before
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # SQLite keeps no offset; written in UTC
        return f"{what}: already applied at {when:%Y-%m-%dT%H:%M:%SZ}: nothing changed"
    a = outcome.applied
    return (
        f"{what}: applied: {a.lines} debts listed, {a.new} new, {a.changed} changed,"
        f" {a.closed} closed"
    )


def run_sign(args: argparse.Namespace) -> int:
    key_hex = args.key_hex or os.environ.get("BILLSWITCH_DEBT_KEY")
    if not key_hex:
        raise DebtCommandError("--key-hex (or BILLSWITCH_DEBT_KEY) is required")
    try:
        key = private_key_from_hex(key_hex)
        data = args.file.read_bytes()
    except BadKey as exc:
        raise DebtCommandError(f"--key-hex: {exc}") from None
    except OSError as exc:
        raise DebtCommandError(f"{args.file}: {exc.strerror}") from None
    out = Path(f"{args.file}.sig")
    out.write_bytes(sign(key, data))
    print(f"{out}: signed with key {fingerprint(public_of(key))}")
    return 0


def fail(message: str) -> int:
    print(f"billswitch debts: {message}", file=sys.stderr)
    return 2
