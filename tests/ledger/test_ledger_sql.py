"""The writer's raw bulk statements (switch/ledger/sql.py) store what Core statements would."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, exc, insert, select

from switch.ledger import schema as s
from switch.ledger.sql import bind, in_list, insert_rows, next_ids, update_rows
from tests.ledger.ledger_support import ACQ, ATM, DAY, NOW

_REQUEST = ("acquirer_id", "terminal_id", "stan", "transmitted", "mti", "request_hash")
_REST = ("response_code", "response", "payment_id", "created_at")


def _request(stan: str, response: str = '{"39": "00"}') -> tuple[object, ...]:
    return (ACQ, ATM, stan, "1122101500", "0200", "h" * 64, "00", response, None)


def test_rows_round_trip_as_core_would_store_them(ledger: Engine) -> None:
    """Dates and times, NULLs and non-ASCII text come back as written."""
    response = '{"48": "Гильман П. Məmmədov Ə. 😀 \\"quoted\\" back\\\\slash"}'
    with ledger.begin() as conn:
        at = bind(conn, s.requests.c.created_at)(NOW)
        rows = [(*_request("000001", response), at), (*_request("000002"), at)]
        assert insert_rows(conn, s.requests, (*_REQUEST, *_REST), rows) == 2
        conn.execute(
            insert(s.requests),
            [dict(zip((*_REQUEST, *_REST), (*_request("000003", response), NOW), strict=True))],
        )
    with ledger.connect() as conn:
        r = s.requests.c
        got = conn.execute(
            select(r.stan, r.response, r.payment_id, r.created_at).order_by(r.stan)
        ).all()
        stored = conn.exec_driver_sql("SELECT DISTINCT created_at FROM requests").all()
    assert len(stored) == 1  # SQLite: the same text as Core's
    assert [tuple(row) for row in got] == [
        ("000001", response, None, got[2].created_at),
        ("000002", '{"39": "00"}', None, got[2].created_at),
        ("000003", response, None, got[2].created_at),
    ]
    assert got[2].created_at.replace(tzinfo=None) == NOW.replace(tzinfo=None)


def test_a_key_taken_is_skipped_and_counted(ledger: Engine) -> None:
    tail = " ON CONFLICT DO NOTHING"
    with ledger.begin() as conn:
        at = bind(conn, s.requests.c.created_at)(NOW)
        columns = (*_REQUEST, *_REST)
        assert insert_rows(conn, s.requests, columns, [(*_request("000001"), at)], tail) == 1
        rows = [(*_request("000001"), at), (*_request("000002"), at)]
        assert insert_rows(conn, s.requests, columns, rows, tail) == 1


def test_ids_taken_up_front_are_new_and_ascending(ledger: Engine) -> None:
    with ledger.begin() as conn:
        first = next_ids(conn, s.journal, 3)
        day = bind(conn, s.journal.c.business_day)
        at = bind(conn, s.journal.c.created_at)(NOW)
        rows = [(jid, "payment", None, ACQ, 1, "944", day(DAY), at) for jid in first]
        columns = ("id", "kind", "payment_id", "acquirer_id", "amount", "currency")
        insert_rows(conn, s.journal, (*columns, "business_day", "created_at"), rows)
        second = next_ids(conn, s.journal, 2)
    assert first == sorted(first) and len(set(first)) == 3
    assert min(second) > max(first) and second == sorted(second)
    with ledger.connect() as conn:
        days = conn.execute(select(s.journal.c.business_day).where(s.journal.c.id.in_(first)))
        assert set(days.scalars()) == {DAY}


def test_update_rows_applies_each_row_once(ledger: Engine) -> None:
    d = s.debts.c
    with ledger.begin() as conn:
        debts = dict(conn.execute(select(d.id, d.amount_open)).all())
        changes = [(debt_id, i + 1) for i, debt_id in enumerate(sorted(debts))]
        update_rows(conn, d.amount_open, "amount_open - {new}", ("id",), changes)
        keys = {(b, a) for b, a in conn.execute(select(d.biller_code, d.account))}
        in_keys, params = in_list(conn, keys)
        found = conn.exec_driver_sql(
            f"SELECT count(*) FROM debts WHERE (biller_code, account) IN ({in_keys})", params
        ).scalar_one()
    assert found == len(debts)
    with ledger.connect() as conn:
        after = dict(conn.execute(select(d.id, d.amount_open)).all())
    assert after == {debt_id: debts[debt_id] - paid for debt_id, paid in changes}


def test_an_over_long_value_fails_rather_than_being_cut(ledger: Engine, db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(exc.DBAPIError), ledger.begin() as conn:
        at = bind(conn, s.requests.c.created_at)(NOW)
        row = (*_request("0000001"), at)  # a 7-character STAN
        insert_rows(conn, s.requests, (*_REQUEST, *_REST), [row])
