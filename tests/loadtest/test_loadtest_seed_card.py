"""``bench --on-us`` registers the demo card under its own home's hash key when needed,
and with ``--cards N`` the cards derived from it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, func, select

from hsm_sim.crypto.pin_verify import visa_pvv
from loadtest.security import card_pans
from loadtest.seed import demo_pvk, seed_cards, seed_demo_card
from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.config import Settings
from switch.demo import DEMO_WALLET_FUNDS
from switch.ledger.schema import cards, entries

PAN = "9990001000000001"  # the demo card (test-only)


def _database(tmp_path: Path) -> str:
    """A demo database whose card was registered by another home (another hash key)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first = tmp_path / "first-home"
    hasher = Hasher(load_or_create_key(first / "hash.key"))
    prepare_database(Settings(home=first, db=url, demo_data=True), hasher)
    return url


def _cards_and_balance(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(cards)).scalar_one()
        total = conn.execute(select(func.coalesce(func.sum(entries.c.amount), 0))).scalar_one()
    engine.dispose()
    return count, total


def test_a_new_home_gets_the_card_once_and_the_ledger_stays_balanced(tmp_path: Path) -> None:
    url = _database(tmp_path)
    assert not seed_demo_card(url, tmp_path / "first-home", PAN)  # already known there
    assert seed_demo_card(url, tmp_path / "bench-home", PAN)
    assert not seed_demo_card(url, tmp_path / "bench-home", PAN)
    assert _cards_and_balance(url) == (2, 0)


def test_other_pans_are_left_alone(tmp_path: Path) -> None:
    url = _database(tmp_path)
    assert not seed_demo_card(url, tmp_path / "bench-home", "4000001234567899")
    assert _cards_and_balance(url)[0] == 1


def test_bench_cards_get_their_own_pvv_wallet_and_funds_once(tmp_path: Path) -> None:
    url = _database(tmp_path)
    home = tmp_path / "bench-home"
    pans = card_pans(PAN, 4)[1:]
    assert seed_cards(url, home, pans, "1234") == 3
    assert seed_cards(url, home, pans, "1234") == 0  # known now: left as they are
    hasher = Hasher(load_or_create_key(home / "hash.key"))
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = {
            row.pan_hash: row
            for row in conn.execute(
                select(cards).where(cards.c.pan_hash.in_(map(hasher.pan, pans)))
            )
        }
        for pan in pans:
            row = rows[hasher.pan(pan)]
            assert row.pvv == visa_pvv(demo_pvk(), pan, "1", "1234")
            assert row.funds == DEMO_WALLET_FUNDS and row.status == "active"
            balance = select(func.sum(entries.c.amount)).where(
                entries.c.account_code == row.wallet_account
            )
            assert conn.execute(balance).scalar_one() == -DEMO_WALLET_FUNDS
    engine.dispose()
    assert len({row.wallet_account for row in rows.values()}) == 3
    assert _cards_and_balance(url) == (4, 0)  # the demo card and ours; journal balanced
