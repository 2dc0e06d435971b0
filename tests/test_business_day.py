"""Business day arithmetic around the cut-over, and the roll-over in the database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from switch.business_day import business_day, next_cutover, roll_over
from switch.ledger import schema as s
from switch.ledger.database import make_engine, migrate


def test_before_cutover_is_today_after_is_tomorrow() -> None:
    cut = time(23, 0)
    assert business_day(datetime(2026, 11, 21, 22, 59, 59, tzinfo=UTC), cut) == date(2026, 11, 21)
    assert business_day(datetime(2026, 11, 21, 23, 0, 0, tzinfo=UTC), cut) == date(2026, 11, 22)


def test_cutover_is_in_the_network_time_zone() -> None:
    # 19:30 UTC is 23:30 in Baku (UTC+4): past a 23:00 cut-over there.
    moment = datetime(2026, 11, 21, 19, 30, tzinfo=UTC)
    assert business_day(moment, time(23, 0), "Asia/Baku") == date(2026, 11, 22)
    assert business_day(moment, time(23, 0), "UTC") == date(2026, 11, 21)


def test_next_cutover_is_strictly_later() -> None:
    cut = time(23, 0)
    at = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    assert next_cutover(at, cut) == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    before = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert next_cutover(before, cut) == datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def test_roll_over_opens_today_and_closes_earlier_days(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    now = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    with engine.begin() as conn:
        assert roll_over(conn, date(2026, 11, 22), now) == []
        assert roll_over(conn, date(2026, 11, 23), now) == [date(2026, 11, 22)]
        assert roll_over(conn, date(2026, 11, 23), now) == []
        states = dict(
            conn.execute(
                s.business_days.select().with_only_columns(
                    s.business_days.c.day, s.business_days.c.state
                )
            ).all()
        )
    assert states == {date(2026, 11, 22): "closed", date(2026, 11, 23): "open"}
    engine.dispose()
