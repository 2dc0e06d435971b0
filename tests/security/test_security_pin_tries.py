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
from switch.security.cards import reserve_try, settle_try

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


def _tries(engine: Engine) -> tuple[int, int]:
    """The card's wrong tries and its tries in flight."""
    with engine.connect() as conn:
        return tuple(conn.execute(select(s.cards.c.pin_tries, s.cards.c.pin_pending)).one())  # type: ignore[return-value]


def _set_tries(engine: Engine, tries: int, pending: int = 0) -> None:
    with engine.begin() as conn:
        conn.execute(update(s.cards).values(pin_tries=tries, pin_pending=pending))


def _reserve(engine: Engine, pan_hash: str = CARD) -> bool:
    with engine.begin() as conn:
        return reserve_try(conn, pan_hash, LIMIT)


def _settle(engine: Engine, right: bool | None) -> int:
    with engine.begin() as conn:
        return settle_try(conn, CARD, right)


def test_reservations_count_tries_in_flight_up_to_the_limit(engine: Engine) -> None:
    assert [_reserve(engine) for _ in range(5)] == [True, True, True, False, False]
    assert _tries(engine) == (0, LIMIT)
    assert not _reserve(engine, "x" * 64)  # no such card: nothing to reserve


def test_racing_reservations_never_pass_the_limit(engine: Engine) -> None:
    """Twenty threads reserve at once, each in its own transaction: three win."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _reserve(engine), range(20)))
    assert results.count(True) == LIMIT
    assert _tries(engine) == (0, LIMIT)


def test_wrong_tries_are_counted_and_then_block(engine: Engine) -> None:
    for expected in (1, 2, 3):
        assert _reserve(engine)
        assert _settle(engine, False) == expected
    assert not _reserve(engine)
    assert _tries(engine) == (LIMIT, 0)


def test_a_wrong_try_counted_and_two_in_flight_leave_no_try(engine: Engine) -> None:
    _set_tries(engine, 1, 2)
    assert not _reserve(engine)


def test_an_undecided_try_is_given_back_and_counts_nothing(engine: Engine) -> None:
    _set_tries(engine, 1)
    assert _reserve(engine)
    assert _settle(engine, None) == 1
    assert _tries(engine) == (1, 0)
    _set_tries(engine, 0, 0)  # an operator reset the card meanwhile: never below 0
    assert _settle(engine, None) == 0
    assert _tries(engine) == (0, 0)


def test_a_right_pin_resets_the_wrong_tries(engine: Engine) -> None:
    _set_tries(engine, 2)
    assert _reserve(engine)
    assert _settle(engine, True) == 0
    assert _tries(engine) == (0, 0)


def test_a_right_pin_does_not_wipe_tries_still_in_flight(engine: Engine) -> None:
    """A right PIN and two guesses verified beside it: the right PIN resets only the
    counted tries; the two guesses, wrong, still count when they are decided."""
    assert all(_reserve(engine) for _ in range(3))
    assert _settle(engine, True) == 0
    assert _tries(engine) == (0, 2)
    assert _reserve(engine)  # one try left beside the two in flight
    assert not _reserve(engine)
    assert [_settle(engine, False) for _ in range(3)] == [1, 2, 3]
    assert _tries(engine) == (LIMIT, 0)
    assert not _reserve(engine)
