"""``bench --on-us`` registers the demo card under its own home's hash key when needed."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, func, select

from loadtest.seed import seed_demo_card
from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.config import Settings
from switch.ledger.schema import cards, entries

PAN = "9990001000000001"  # the demo card (test-only)


def _database(tmp_path: Path) -> str:
    """A demo database whose card was registered by another home (another hash key)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first = tmp_path / "first-home"
    hasher = Hasher(load_or_create_key(first / "hash.key"))
    for engine in prepare_database(Settings(home=first, db=url), hasher):
        engine.dispose()
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
