"""``billswitch cards``: the operator's view of on-us wallet cards, and PIN-tries reset.

A card is named by its wallet account (``cards list`` shows it with the masked
PAN), so no full PAN is ever typed on a command line or printed. Resetting the
wrong-PIN count is what a cardholder asks the issuer for after a 75; it takes
effect at once on every node (every try is reserved in the ``pin_tries`` table,
never decided from a node's cache).
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Connection, Engine, insert, select, update

from iso.currency import major_units
from switch.ledger import schema as s

_card = s.cards.c
_tries = s.pin_tries.c


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
    query = select(s.cards, _tries.tries).outerjoin(s.pin_tries)
    rows = conn.execute(query.order_by(_card.wallet_account)).all()
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
            tries="-" if r.tries is None else r.tries,  # no row: no try is granted
            status=r.status,
        )
        for r in rows
    ]


def reset_tries(conn: Connection, wallet: str) -> int:
    """The count before the reset; the card's tries row is locked while it changes."""
    card = conn.execute(select(_card.pan_hash).where(_card.wallet_account == wallet))
    pan_hash = card.scalar_one_or_none()
    if pan_hash is None:
        raise CardCommandError(f"no card with wallet {wallet!r} (see: billswitch cards list)")
    query = select(_tries.tries).where(_tries.pan_hash == pan_hash).with_for_update()
    before = conn.execute(query).scalar_one_or_none()
    if before is None:  # a card without its row gets no try: give it one
        conn.execute(insert(s.pin_tries).values(pan_hash=pan_hash, tries=0, pending=0))
        return 0
    # Tries stuck in flight (a node stopped while the HSM verified them) are cleared too.
    reset = update(s.pin_tries).where(_tries.pan_hash == pan_hash).values(tries=0, pending=0)
    conn.execute(reset)
    return before


def fail(message: str) -> int:
    print(f"billswitch cards: {message}", file=sys.stderr)
    return 2
