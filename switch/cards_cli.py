"""``billswitch cards``: the operator's view of on-us wallet cards, and PIN-tries reset.

A card is named by its wallet account (``cards list`` shows it with the masked
PAN), so no full PAN is ever typed on a command line or printed. Resetting the
wrong-PIN count is what a cardholder asks the issuer for after a 75; it takes
effect at once on every node (a node reads a blocked card again rather than
trusting its card cache).
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Connection, Engine, select, update

from iso.currency import major_units
from switch.ledger import schema as s

_card = s.cards.c


class CardCommandError(Exception):
    """A card that does not exist, or a wrong argument: one line."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    cards = sub.add_parser("cards", help="list on-us wallet cards, reset wrong-PIN counts")
    actions = cards.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "list",
        help="masked PAN, wallet, funds, wrong PIN tries, status",
        epilog="example: billswitch cards list --home /var/lib/billswitch",
    )
    reset = actions.add_parser(
        "reset-tries",
        help="set a card's wrong-PIN count back to 0",
        epilog="example: billswitch cards reset-tries WAL:1f2e3d4c5b6a7980",
    )
    reset.add_argument("wallet", help="the card's wallet account, as `cards list` shows it")
    return cards


def run(args: argparse.Namespace, engine: Engine) -> int:
    with engine.begin() as conn:
        if args.action == "list":
            print("\n".join(list_cards(conn)) or "no on-us cards")
            return 0
        before = reset_tries(conn, args.wallet)
    print(f"card {args.wallet}: wrong PIN tries {before} -> 0")
    return 0


_LIST = "{pan:19s}  {wallet:40s}  {funds:>20s}  {tries:>5}  {status}"


def list_cards(conn: Connection) -> list[str]:
    """A header and one line per card (funds in major units); no lines when there are none."""
    rows = conn.execute(select(s.cards).order_by(_card.wallet_account)).all()
    if not rows:
        return []
    header = _LIST.format(
        pan="CARD", wallet="WALLET", funds="FUNDS", tries="TRIES", status="STATUS"
    )
    return [header] + [
        _LIST.format(
            pan=r.masked_pan,
            wallet=r.wallet_account,
            funds=major_units(r.funds, r.currency),
            tries=r.pin_tries,
            status=r.status,
        )
        for r in rows
    ]


def reset_tries(conn: Connection, wallet: str) -> int:
    """The count before the reset; the card row is locked while it changes."""
    query = select(_card.pin_tries).where(_card.wallet_account == wallet)
    before = conn.execute(query.with_for_update()).scalar_one_or_none()
    if before is None:
        raise CardCommandError(f"no card with wallet {wallet!r} (see: billswitch cards list)")
    # Tries stuck in flight (a node stopped while the HSM verified them) are cleared too.
    reset = update(s.cards).where(_card.wallet_account == wallet).values(pin_tries=0, pin_pending=0)
    conn.execute(reset)
    return before


def fail(message: str) -> int:
    print(f"billswitch cards: {message}", file=sys.stderr)
    return 2
