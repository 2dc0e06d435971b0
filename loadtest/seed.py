"""``--seed-debts``: give the test accounts something to pay.

The demo data leaves only two accounts owing, so a long payment-heavy run
would use their debts up and turn into inquiries (see budget.py). This hook
writes one extra open debt per existing customer account straight into the
switch's database, in a far-future period (209912) so real demo debts are
still paid first (oldest first) and the seeded rows are easy to find and
delete. Seed before starting the switch if it caches held debts in memory.

``bench --on-us`` also makes sure the database knows the demo card under the
bench switch's hash key (see ``seed_demo_card``).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, select, update

from loadtest.workload import BILLER
from switch.cardholder import Hasher, load_or_create_key
from switch.demo import DEMO_CARD_PAN, load_demo_card
from switch.ledger.database import make_engine
from switch.ledger.schema import cards, customers, debts

SEED_PERIOD = "209912"
SEED_INVOICE = "LOADTEST"


def seed_debts(url: str, accounts: list[str], amount: int, biller: str = BILLER) -> int:
    """Add ``amount`` to the seed debt of every known account; returns how many."""
    if amount < 1:
        raise ValueError("seed amount must be positive")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            known = _known_accounts(conn, biller, accounts)
            for account in known:
                _add_debt(conn, biller, account, amount)
    finally:
        engine.dispose()
    return len(known)


def _known_accounts(conn: Connection, biller: str, accounts: list[str]) -> list[str]:
    """Only customers the biller has: a debt of an unknown account would be unreachable."""
    query = select(customers.c.account).where(
        customers.c.biller_code == biller, customers.c.account.in_(accounts)
    )
    return sorted(row[0] for row in conn.execute(query))


def _add_debt(conn: Connection, biller: str, account: str, amount: int) -> None:
    where = (
        (debts.c.biller_code == biller)
        & (debts.c.account == account)
        & (debts.c.period == SEED_PERIOD)
    )
    grown = conn.execute(
        update(debts)
        .where(where)
        .values(
            amount_original=debts.c.amount_original + amount,
            amount_open=debts.c.amount_open + amount,
        )
    )
    if grown.rowcount == 0:
        conn.execute(
            debts.insert().values(
                biller_code=biller,
                account=account,
                period=SEED_PERIOD,
                invoice=SEED_INVOICE,
                amount_original=amount,
                amount_open=amount,
            )
        )


def seed_demo_card(url: str, home: Path, pan: str) -> bool:
    """Register the demo on-us card under ``home``'s hash key, unless the database has it.

    The switch finds a card by a keyed hash of its PAN, and the key lives in
    the switch's home; the demo data registers the card once per database,
    under the key of the first home that started on it. A bench with a new
    home would never find that card (05), so it registers the card again, as
    the demo data does (PVV under the demo PVK, a wallet of its own funded
    with 1,000,000). Other PANs are left alone: only the demo card's PIN is known.
    """
    if pan != DEMO_CARD_PAN:
        return False
    pan_hash = Hasher(load_or_create_key(home / "hash.key")).pan(pan)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.execute(select(cards.c.pan_hash).where(cards.c.pan_hash == pan_hash)).first():
                return False
            load_demo_card(conn, pan_hash)
    finally:
        engine.dispose()
    return True
