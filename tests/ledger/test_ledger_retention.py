"""Request rows older than the retention are purged in chunks (issue 8 item 9b); of the
outbox only rows a biller acknowledged (done) ever go (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select, update

from switch.ledger import outbox
from switch.ledger import schema as s
from switch.ledger.retention import RETAINED, Retained, purge_chunk
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
            deleted.append(purge_chunk(conn, Retained(s.requests.c.created_at), cutoff, chunk=3))
        if deleted[-1] < 3:
            break
    assert deleted == [3, 3, 1]
    assert _ages(ledger) == kept
    with ledger.connect() as conn:  # money is not touched: only identities expire
        assert conn.execute(select(func.count()).select_from(s.payments)).scalar() == 9


def test_every_purged_table_has_its_time_column_indexed() -> None:
    for retained in RETAINED:
        column = retained.column
        wanted = [column.name] if retained.only is None else [retained.only[0].name, column.name]
        assert any([c.name for c in index.columns] == wanted for index in column.table.indexes), (
            column
        )


def _outbox_rows(ledger: Engine, at: datetime) -> None:
    """A row of every state for each action, all last touched at ``at``."""
    states = {outbox.PENDING: "P", outbox.PARKED: "K", outbox.DONE: "D"}
    with ledger.begin() as conn:
        deliveries = [
            outbox.Delivery("ONL01", action, f"{states[state]}-{action}-{at:%Y%m%d}")
            for action in outbox.ACTIONS
            for state in states
        ]
        outbox.enqueue(conn, deliveries, at)
        for state, letter in states.items():
            conn.execute(
                update(s.outbox)
                .where(s.outbox.c.payment_id.like(f"{letter}-%-{at:%Y%m%d}"))
                .values(state=state, next_at=at, updated_at=at)
            )


def _outbox_left(ledger: Engine) -> set[str]:
    with ledger.connect() as conn:
        return set(conn.execute(select(s.outbox.c.payment_id)).scalars())


def test_the_purge_removes_only_outbox_rows_a_biller_acknowledged(ledger: Engine) -> None:
    """A pending row is money a biller must still be told of and a parked one waits for an
    operator: however old, they stay. Done rows go after the retention, like requests."""
    old, recent = NOW - timedelta(days=400), NOW - timedelta(days=34)
    _outbox_rows(ledger, old)
    _outbox_rows(ledger, recent)
    cutoff = NOW - timedelta(days=35)
    for retained in RETAINED:
        while True:
            with ledger.begin() as conn:
                if purge_chunk(conn, retained, cutoff, chunk=2) < 2:
                    break
    left = _outbox_left(ledger)
    assert {pid for pid in left if pid.startswith("D-")} == {
        f"D-{action}-{recent:%Y%m%d}" for action in outbox.ACTIONS
    }
    assert {pid for pid in left if not pid.startswith("D-")} == {
        f"{letter}-{action}-{at:%Y%m%d}"
        for letter in "PK"
        for action in outbox.ACTIONS
        for at in (old, recent)
    }
