"""PIN tries are reserved in the card's pin_tries row before the HSM verifies them
(issue 9 item 4).

The statements of switch/security/tries.py on both backends: a batch reads its
cards' rows under lock (PostgreSQL) or under the database's write lock (SQLite), so
tries racing each other (threads here, requests in flight or other nodes on the
wire) cannot together pass the limit; and a batch is the same few statements
whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, create_engine, event, insert, select, update

from switch.ledger import schema as s
from switch.ledger.accounts import ensure_account
from switch.ledger.database import migrate
from switch.security.tries import BUSY, RESERVE, RIGHT, UNDECIDED, WRONG, apply_asks

CARD = "h" * 64
LIMIT = 3
NOW, HOLD = 1_000_000, 60


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    migrate(engine)
    _add_card(engine, CARD, "WALLET:1")
    yield engine
    engine.dispose()


def _add_card(engine: Engine, pan_hash: str, wallet: str) -> None:
    with engine.begin() as conn:
        ensure_account(conn, wallet, "wallet", "issuer", "944")
        conn.execute(
            insert(s.cards).values(
                pan_hash=pan_hash,
                masked_pan="999000******0001",
                pvki="1",
                pvv="1234",
                wallet_account=wallet,
                currency="944",
                status="active",
            )
        )
        conn.execute(insert(s.pin_tries).values(pan_hash=pan_hash, tries=0, pending=0))


def _tries(engine: Engine) -> tuple[int, int]:
    """The card's wrong tries and its tries in flight."""
    with engine.connect() as conn:
        return tuple(conn.execute(select(s.pin_tries.c.tries, s.pin_tries.c.pending)).one())  # type: ignore[return-value]


def _set_tries(engine: Engine, tries: int, pending: int = 0, until: int = NOW + HOLD) -> None:
    with engine.begin() as conn:
        conn.execute(update(s.pin_tries).values(tries=tries, pending=pending, pending_until=until))


def _asks(engine: Engine, *asks: tuple[str, str], now: int = NOW) -> list:  # type: ignore[type-arg]
    with engine.begin() as conn:
        return apply_asks(conn, list(asks), LIMIT, now, HOLD)


def _reserve(engine: Engine, pan_hash: str = CARD, now: int = NOW) -> object:
    return _asks(engine, (RESERVE, pan_hash), now=now)[0]


def _wrong(engine: Engine) -> int:
    return _asks(engine, (WRONG, CARD))[0]


def _right(engine: Engine) -> None:
    assert _asks(engine, (RIGHT, CARD)) == [None]


def test_reservations_count_tries_in_flight_up_to_the_limit(engine: Engine) -> None:
    """Beyond the limit a card with no wrong try is busy (ask again), not blocked."""
    assert [_reserve(engine) for _ in range(5)] == [True, True, True, BUSY, BUSY]
    assert _tries(engine) == (0, LIMIT)
    assert _reserve(engine, "x" * 64) is False  # no such card: nothing to reserve


def test_one_batch_reserves_round_by_round(engine: Engine) -> None:
    """Five asks for one card in one transaction: three tries, then busy."""
    assert _asks(engine, *[(RESERVE, CARD)] * 5) == [True, True, True, BUSY, BUSY]
    assert _tries(engine) == (0, LIMIT)


def test_racing_reservations_never_pass_the_limit(engine: Engine) -> None:
    """Twenty threads reserve at once, each in its own transaction: three win."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _reserve(engine), range(20)))
    assert results.count(True) == LIMIT
    assert _tries(engine) == (0, LIMIT)


def test_wrong_tries_are_counted_and_then_block(engine: Engine) -> None:
    for expected in (1, 2, 3):
        assert _reserve(engine) is True
        assert _wrong(engine) == expected
    assert _reserve(engine) is False
    assert _tries(engine) == (LIMIT, 0)


def test_wrong_tries_settled_together_count_one_by_one(engine: Engine) -> None:
    """Three wrong PINs decided in one transaction: each answer sees its own count (55,
    55, 75), and reservations asked with them find the card blocked."""
    assert _asks(engine, *[(RESERVE, CARD)] * 3) == [True] * 3
    assert _asks(engine, *[(WRONG, CARD)] * 3, (RESERVE, CARD)) == [1, 2, 3, False]
    assert _tries(engine) == (LIMIT, 0)


def test_wrong_tries_settled_with_a_right_one_count_after_it(engine: Engine) -> None:
    _set_tries(engine, 2, 3)
    assert _asks(engine, (WRONG, CARD), (RIGHT, CARD), (WRONG, CARD)) == [1, None, 2]
    assert _tries(engine) == (2, 0)


def test_a_wrong_try_counted_and_two_in_flight_leave_no_try(engine: Engine) -> None:
    _set_tries(engine, 1, 2)
    assert _reserve(engine) == BUSY
    _set_tries(engine, LIMIT, 0)
    assert _reserve(engine) is False


def test_an_undecided_try_is_given_back_and_counts_nothing(engine: Engine) -> None:
    _set_tries(engine, 1)
    assert _reserve(engine) is True
    assert _asks(engine, (UNDECIDED, CARD)) == [None]
    assert _tries(engine) == (1, 0)
    _set_tries(engine, 0, 0)  # an operator reset the card meanwhile: never below 0
    assert _asks(engine, (UNDECIDED, CARD)) == [None]
    assert _tries(engine) == (0, 0)


def test_a_right_pin_resets_the_wrong_tries(engine: Engine) -> None:
    _set_tries(engine, 2)
    assert _reserve(engine) is True
    _right(engine)
    assert _tries(engine) == (0, 0)


def test_a_right_pin_does_not_wipe_tries_still_in_flight(engine: Engine) -> None:
    """A right PIN and two guesses verified beside it: the right PIN resets only the
    counted tries; the two guesses, wrong, still count when they are decided."""
    assert _asks(engine, *[(RESERVE, CARD)] * 3) == [True] * 3
    _right(engine)
    assert _tries(engine) == (0, 2)
    assert _reserve(engine) is True  # one try left beside the two in flight
    assert _reserve(engine) == BUSY
    assert _asks(engine, *[(WRONG, CARD)] * 3) == [1, 2, 3]
    assert _tries(engine) == (LIMIT, 0)
    assert _reserve(engine) is False


def test_reservations_left_behind_run_out_after_the_hold(engine: Engine) -> None:
    """A node died with every try of the card in flight: busy until the hold after the
    last reservation runs out, then the tries in flight count from zero again; wrong
    tries never run out."""
    _set_tries(engine, 1, 2, until=NOW + HOLD)
    assert _reserve(engine, now=NOW + HOLD - 1) == BUSY
    assert _reserve(engine, now=NOW + HOLD) is True
    assert _tries(engine) == (1, 1)
    _set_tries(engine, LIMIT, 0, until=0)
    assert _reserve(engine, now=NOW + 10 * HOLD) is False


def _statements(engine: Engine, asks: list[tuple[str, str]]) -> tuple[int, list]:  # type: ignore[type-arg]
    seen: list[str] = []

    def _seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", _seen)
    try:
        results = _asks(engine, *asks)
    finally:
        event.remove(engine, "before_cursor_execute", _seen)
    return len([x for x in seen if not x.startswith(("BEGIN", "COMMIT"))]), results


def test_a_batch_is_the_same_few_statements_whatever_its_size(engine: Engine) -> None:
    """Each statement is a round trip every ask of the batch waits for, and the ledger's
    batches wait for nothing of it: a batch reads its rows (PostgreSQL: locked; SQLite:
    after taking the write lock) and writes them back in one statement, however many
    cards and asks. (Once a statement per card settled and per round reserved.)"""
    cards = [f"{n:064x}" for n in range(10)]
    for n, card in enumerate(cards):
        _add_card(engine, card, f"WALLET:{n + 2}")
    one = [(RESERVE, cards[0])]
    reserved = [(RESERVE, card) for card in cards for _ in range(2)]
    settled = [(kind, card) for card in cards for kind in (WRONG, RIGHT)]
    expected = 2 if engine.dialect.name == "postgresql" else 3
    assert _statements(engine, one) == (expected, [True])
    assert _statements(engine, reserved) == (expected, [True] * 20)
    count, results = _statements(engine, settled + reserved)
    assert count == expected
    # A wrong try settled with a right one counts after it: one wrong try counted, so
    # two tries left; the first card had one still in flight, so one is reserved.
    assert results == [1, None] * 10 + [True, BUSY] + [True] * 18
    with engine.connect() as conn:
        rows = conn.execute(select(s.pin_tries.c.tries, s.pin_tries.c.pending)).all()
    assert sorted(rows) == [(0, 0)] + [(1, 2)] * 10
