"""Request rows older than the retention are purged in chunks (issue 8 item 9b)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from switch.ledger import schema as s
from switch.ledger.retention import RETAINED, purge_chunk
from tests.ledger.ledger_support import NOW, billers, payment, record_one


def _requests_at(ledger: Engine, *moments: datetime) -> None:
    """One approved payment recorded at each moment (its request row's created_at)."""
    util = billers(ledger)["UTIL01"]
    for moment in moments:
        assert record_one(ledger, payment(util, "1000002", 10), now=moment).code == "00"


def _ages(ledger: Engine) -> list[datetime]:
    with ledger.connect() as conn:
        rows = conn.execute(select(s.requests.c.created_at).order_by(s.requests.c.created_at))
        return [r if r.tzinfo else r.replace(tzinfo=UTC) for r in rows.scalars()]


def test_purge_deletes_only_rows_older_than_the_cutoff_chunk_by_chunk(ledger: Engine) -> None:
    old = [NOW - timedelta(days=40, minutes=i) for i in range(7)]
    kept = [NOW - timedelta(days=34), NOW]
    _requests_at(ledger, *old, *kept)
    cutoff = NOW - timedelta(days=35)
    deleted = []
    while True:
        with ledger.begin() as conn:
            deleted.append(purge_chunk(conn, s.requests.c.created_at, cutoff, chunk=3))
        if deleted[-1] < 3:
            break
    assert deleted == [3, 3, 1]
    assert _ages(ledger) == kept
    with ledger.connect() as conn:  # money is not touched: only identities expire
        assert conn.execute(select(func.count()).select_from(s.payments)).scalar() == 9


def test_every_purged_table_has_its_time_column_indexed() -> None:
    for column in RETAINED:
        assert any(
            [c.name for c in index.columns] == [column.name] for index in column.table.indexes
        ), column
