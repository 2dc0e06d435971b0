"""``--seed-debts``: give the test accounts something to pay.

The demo data leaves only two accounts owing, so a long payment-heavy run
would use their debts up and turn into inquiries (see budget.py). This hook
writes one extra open debt per existing customer account straight into the
switch's database, in a far-future period (209912) so real demo debts are
still paid first (oldest first) and the seeded rows are easy to find and
delete. Seed before starting the switch if it caches held debts in memory.

``bench --on-us`` also makes sure the database knows the demo card under the
bench switch's hash key (see ``seed_demo_card``), and with ``--cards N`` the
N - 1 cards derived from it (``seed_cards``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Connection, insert, select, update

from hsm_sim.crypto.pin_verify import visa_pvv
from loadtest.workload import BILLER
from switch.cardholder import Hasher, load_or_create_key, mask_pan
from switch.demo import DEMO_CARD_PAN, DEMO_KEYS, DEMO_WALLET_FUNDS, load_demo_card
from switch.ledger import accounts
from switch.ledger.accounts import ensure_account
from switch.ledger.database import make_engine
from switch.ledger.journal import Posting, post_all
from switch.ledger.schema import cards, customers, debts, pin_tries

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


CARD_CURRENCY = "944"
FUNDING = f"FUNDING:{CARD_CURRENCY}"
PVKI = "1"


def demo_pvk() -> bytes:
    """The demo issuer PVK (public test data, README and switch/demo.py)."""
    return bytes.fromhex(next(key for _, name, key in DEMO_KEYS if name == "PVK"))


def seed_cards(url: str, home: Path, pans: list[str], pin: str) -> int:
    """Register bench cards (``--cards``) under ``home``'s hash key; returns how many were new.

    Each gets what the demo card has: a PVV of ``pin`` under the demo PVK
    (Visa PVV, as card issuance would make it), its own wallet account and
    the demo card's funds, posted as a balanced funding journal row. So the
    load's payments debit many wallet rows, as on a real network, instead of
    serializing on one. Cards the database already has are left as they are.
    """
    hasher = Hasher(load_or_create_key(home / "hash.key"))
    hashes = {hasher.pan(pan): pan for pan in dict.fromkeys(pans)}
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            known = _known_cards(conn, list(hashes))
            new = {h: pan for h, pan in hashes.items() if h not in known}
            if new:
                _insert_cards(conn, new, pin)
    finally:
        engine.dispose()
    return len(new)


def _known_cards(conn: Connection, pan_hashes: list[str]) -> set[str]:
    known: set[str] = set()
    for i in range(0, len(pan_hashes), 500):
        chunk = pan_hashes[i : i + 500]
        query = select(cards.c.pan_hash).where(cards.c.pan_hash.in_(chunk))
        known.update(row[0] for row in conn.execute(query))
    return known


def _insert_cards(conn: Connection, new: dict[str, str], pin: str) -> None:
    """Card rows, their wallets and one funding posting per wallet (all balanced)."""
    pvk = demo_pvk()
    ensure_account(conn, FUNDING, "wallet_funding", "issuer", CARD_CURRENCY)
    rows = []
    for pan_hash, pan in new.items():
        wallet = accounts.wallet(pan_hash)
        ensure_account(conn, wallet, "wallet", "issuer", CARD_CURRENCY)
        rows.append(
            {
                "pan_hash": pan_hash,
                "masked_pan": mask_pan(pan),
                "pvki": PVKI,
                "pvv": visa_pvv(pvk, pan, PVKI, pin),
                "wallet_account": wallet,
                "currency": CARD_CURRENCY,
                "status": "active",
                "funds": DEMO_WALLET_FUNDS,
            }
        )
    conn.execute(insert(cards), rows)
    conn.execute(insert(pin_tries), [{"pan_hash": h, "tries": 0, "pending": 0} for h in new])
    today = date.today()
    postings = [
        Posting(
            "funding",
            None,
            None,
            CARD_CURRENCY,
            today,
            ((FUNDING, DEMO_WALLET_FUNDS), (row["wallet_account"], -DEMO_WALLET_FUNDS)),
        )
        for row in rows
    ]
    post_all(conn, postings, datetime.now(UTC))
