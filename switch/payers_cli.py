"""``billswitch payers``: register payer codes (DE 48 PC) and the accounts they stand for.

A payer code is read per request (switch/ledger/payer_codes.py), so a change is
served at once by every running node. Every mistake (a bad code or pair, an unknown
biller, an account the code does not hold) is one line and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sqlalchemy import Engine

from switch.ledger import payer_codes
from switch.ledger.payer_codes import MAX_ACCOUNTS, PayerCodeError


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    payers = sub.add_parser(
        "payers", help="payer codes: one code (DE 48 PC) for a payer's accounts at several billers"
    )
    actions = payers.add_subparsers(dest="action", required=True)
    show = actions.add_parser(
        "list",
        help="every payer code (or those named) with its accounts, in order",
        epilog="example: billswitch payers list PC1000001 --home /var/lib/billswitch",
    )
    show.add_argument("codes", nargs="*", metavar="CODE")
    add = actions.add_parser(
        "add",
        help=f"register CODE for BILLER:ACCOUNT pairs (a new code is made; at most"
        f" {MAX_ACCOUNTS} accounts a code; several at one biller allowed)",
        epilog="examples:\n"
        "  billswitch payers add PC1000001 UTIL01:1000002 TEL01:5550001\n"
        "  billswitch payers add PC1000001 UTIL01:1000003 --db postgresql+psycopg2://bs@db1/switch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("code", help="the payer code, 1-32 letters and digits")
    add.add_argument("pairs", nargs="+", metavar="BILLER:ACCOUNT")
    remove = actions.add_parser(
        "remove",
        help="remove BILLER:ACCOUNT pairs from CODE, or the whole code when none is given"
        " (a code left with no account goes too)",
        epilog="examples:\n"
        "  billswitch payers remove PC1000001 TEL01:5550001\n"
        "  billswitch payers remove PC1000001",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    remove.add_argument("code")
    remove.add_argument("pairs", nargs="*", metavar="BILLER:ACCOUNT")
    return payers


def run(args: argparse.Namespace, engine: Engine) -> int:
    """One action, in one transaction."""
    try:
        with engine.begin() as conn:
            if args.action == "list":
                print("\n".join(_lines(payer_codes.listing(conn, args.codes))) or "no payer codes")
                return 0
            code = payer_codes.check_code(args.code)
            pairs = [payer_codes.parse_pair(p) for p in args.pairs]
            if args.action == "add":
                added = payer_codes.add(conn, code, pairs, datetime.now(UTC))
                print(f"payer code {code}: {added} account(s) added")
            else:
                gone = payer_codes.remove(conn, code, pairs)
                print(f"payer code {code}: {gone} account(s) removed")
    except PayerCodeError as exc:
        raise PayerCommandError(str(exc)) from None
    return 0


def _lines(codes: dict[str, list[payer_codes.Holding]]) -> list[str]:
    return [
        f"{code}  " + " ".join(f"{h.biller}:{h.account}" for h in holdings)
        for code, holdings in codes.items()
    ]


class PayerCommandError(Exception):
    """A wrong argument or a change that cannot be made: one line."""


def fail(message: str) -> int:
    print(f"billswitch payers: {message}", file=sys.stderr)
    return 2
