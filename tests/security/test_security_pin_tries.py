"""PIN tries are reserved on the card row before the HSM verifies them (issue 9 item 4).

The statements of switch/security/cards.py on both backends: the reservation is one
conditional UPDATE, so tries racing each other (threads here, requests in flight or
other nodes on the wire) cannot together pass the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, create_engine, insert, select, update

from switch.ledger import schema as s
from switch.ledger.accounts import ensure_account
from switch.ledger.database import migrate
from switch.security.cards import release_right, release_try, reserve_try

CARD = "h" * 64
LIMIT = 3


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        ensure_account(conn, "WALLET:1", "wallet", "issuer", "944")
        conn.execute(
            insert(s.cards).values(
                pan_hash=CARD,
                masked_pan="999000******0001",
                pvki="1",
                pvv="1234",
                wallet_account="WALLET:1",
                currency="944",
                pin_tries=0,
                status="active",
            )
        )
    yield engine
    engine.dispose()


def _tries(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(s.cards.c.pin_tries)).scalar_one()


def _set_tries(engine: Engine, tries: int) -> None:
    with engine.begin() as conn:
        conn.execute(update(s.cards).values(pin_tries=tries))


def _reserve(engine: Engine, pan_hash: str = CARD) -> int | None:
    with engine.begin() as conn:
        return reserve_try(conn, pan_hash, LIMIT)


def test_a_reservation_counts_up_to_the_limit_and_no_further(engine: Engine) -> None:
    assert [_reserve(engine) for _ in range(5)] == [1, 2, 3, None, None]
    assert _tries(engine) == LIMIT
    assert _reserve(engine, "x" * 64) is None  # no such card: nothing to reserve


def test_racing_reservations_never_pass_the_limit(engine: Engine) -> None:
    """Twenty threads reserve at once, each in its own transaction: three win."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _reserve(engine), range(20)))
    assert sorted(r for r in results if r is not None) == [1, 2, 3]
    assert results.count(None) == 17
    assert _tries(engine) == LIMIT


def test_a_released_try_is_given_back_but_never_below_zero(engine: Engine) -> None:
    assert _reserve(engine) == 1
    assert _reserve(engine) == 2
    with engine.begin() as conn:
        release_try(conn, CARD)
    assert _tries(engine) == 1
    _set_tries(engine, 0)  # an operator reset the count meanwhile
    with engine.begin() as conn:
        release_try(conn, CARD)
    assert _tries(engine) == 0


def test_a_right_pin_resets_the_count_when_no_later_try_is_outstanding(engine: Engine) -> None:
    """One wrong try (kept), then the right PIN's reservation: the count is back to 0."""
    assert _reserve(engine) == 1
    mine = _reserve(engine)
    assert mine == 2
    with engine.begin() as conn:
        release_right(conn, CARD, mine)
    assert _tries(engine) == 0


def test_a_right_pin_keeps_the_tries_reserved_after_it(engine: Engine) -> None:
    """Wrong tries reserved while the right PIN was at the HSM still count: the right PIN
    gives back only its own reservation, so it cannot wipe guesses racing it."""
    mine = _reserve(engine)
    assert mine == 1
    assert _reserve(engine) == 2
    assert _reserve(engine) == 3
    with engine.begin() as conn:
        release_right(conn, CARD, mine)
    assert _tries(engine) == 2
    assert _reserve(engine) == 3
    assert _reserve(engine) is None
