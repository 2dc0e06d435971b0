"""Settlement of a closed business day (issue 12, "Settlement"), on SQLite and PostgreSQL.

Each biller's net of the day (payments - reversals - fees it pays) moves from its
payable to its settled account as one ``settlement`` journal row, once however many
runs race for the day; the report (CSV, JSON) is written from the lines fixed at the
transfer; an open day is refused; a failed task leaves the day to the next run.

Biller-paid fees come from the fees work (not in this branch): their journal rows
(kind ``fee``, reversed by ``fee_reversal``, debiting ``BIL:<code>:PAY``) are
inserted here directly, as that contract says they will be written.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from switch.business_day import roll_over
from switch.close_of_day import LEASE, TASKS, Result, close_day, close_missed
from switch.ledger import accounts as acc
from switch.ledger import queries
from switch.ledger import schema as s
from switch.ledger.database import make_engine
from switch.ledger.journal import Posting, post_all
from switch.ledger.settlement import DayOpen, Line, stored_lines
from switch.settlement_report import paths
from tests.ledger.ledger_support import (
    ACQ,
    CUR,
    DAY,
    FEE_INCOME,
    HOST_ACQ,
    NEXT_DAY,
    NOW,
    WAIT,
    billers,
    count,
    payable,
    payment,
    record_one,
    reversal,
)

LATER = NOW + timedelta(days=1)


def _settled(code: str) -> str:
    return acc.biller_settled(code, CUR)


def _open(ledger: Engine, day: date = DAY) -> None:
    with ledger.begin() as conn:
        roll_over(conn, day, NOW)


def _close(ledger: Engine, today: date = NEXT_DAY) -> None:
    with ledger.begin() as conn:
        roll_over(conn, today, LATER)


def _biller_fee(ledger: Engine, payment_id: int, biller: str, fee: int, day: date = DAY) -> None:
    """A fee the biller pays, as the fees work posts it: payable -> fee income (kind fee;
    a negative ``fee`` is its fee_reversal)."""
    kind = "fee" if fee > 0 else "fee_reversal"
    legs = ((payable(biller), fee), (FEE_INCOME, -fee))
    with ledger.begin() as conn:
        post_all(conn, [Posting(kind, payment_id, ACQ, CUR, day, legs)], NOW)


def _day_of_traffic(ledger: Engine) -> None:
    """DAY: UTIL01 paid 3 times by two acquirers, one reversed in part and one whole;
    FEE01 (payer-paid fee) once; OVER01 twice with biller-paid fees, one fee reversed.
    NEXT_DAY: a reversal of one of DAY's payments (belongs to NEXT_DAY's settlement)."""
    b = billers(ledger)
    _open(ledger)
    util = [
        payment(b["UTIL01"], "1000002", 1000),
        payment(b["UTIL01"], "1000002", 2500, acquirer=HOST_ACQ, terminal=""),
        payment(b["UTIL01"], "1000002", 4000),
    ]
    over = [payment(b["OVER01"], "O1", 700), payment(b["OVER01"], "O1", 300)]
    orders = [*util, payment(b["FEE01"], "F1", 4000), *over]
    orders += [reversal(util[1]), reversal(util[2], kept=1500)]
    assert [record_one(ledger, o).code for o in orders] == ["00"] * len(orders)
    with ledger.connect() as conn:
        ids = {p.amount: p.id for p in conn.execute(select(s.payments))}
    _biller_fee(ledger, ids[700], "OVER01", 40)
    _biller_fee(ledger, ids[300], "OVER01", 25)
    _biller_fee(ledger, ids[300], "OVER01", -25)
    assert record_one(ledger, reversal(util[0], kept=600, day=NEXT_DAY)).code == "00"
    _close(ledger)


EXPECTED = [
    Line("FEE01", CUR, 1, 0, 4000, 0, 4000, None, None),
    Line("OVER01", CUR, 2, 0, 1000, 40, 960, None, None),
    Line("UTIL01", CUR, 3, 2, 7500 - 2500 - 2500, 0, 2500, "AZ00DEMO00000000000000000001", None),
]


def _without_ids(lines: list[Line]) -> list[Line]:
    return [Line(**{**line.__dict__, "journal_id": None}) for line in lines]


def _settlement_rows(ledger: Engine) -> list[tuple[int, int, list[tuple[str, int]]]]:
    j, e = s.journal.c, s.entries.c
    with ledger.connect() as conn:
        rows = conn.execute(
            select(j.id, j.amount, j.business_day).where(j.kind == "settlement").order_by(j.id)
        ).all()
        return [
            (
                jid,
                amount,
                sorted(conn.execute(select(e.account_code, e.amount).where(e.journal_id == jid))),
            )
            for jid, amount, _ in rows
        ]


def test_a_closed_day_is_settled_per_biller(ledger: Engine, tmp_path: Path) -> None:
    _day_of_traffic(ledger)
    outcome = close_day(ledger, DAY, tmp_path, node="test")
    assert outcome.result is Result.SETTLED and outcome.posted
    assert _without_ids(list(outcome.lines)) == EXPECTED
    rows = _settlement_rows(ledger)
    assert [amount for _, amount, _ in rows] == [4000, 960, 2500]
    for (jid, _, legs), line in zip(rows, outcome.lines, strict=True):
        assert line.journal_id == jid
        assert legs == sorted(
            [(payable(line.biller), line.net), (_settled(line.biller), -line.net)]
        )
    with ledger.connect() as conn:
        balances = queries.balances(conn)
        assert queries.unbalanced_journal_rows(conn) == []
        row = conn.execute(select(s.settlements)).one()
        assert (row.business_day, row.state, row.claim, row.last_error) == (DAY, "done", None, None)
        kinds = dict(
            conn.execute(
                select(s.accounts.c.code, s.accounts.c.kind).where(
                    s.accounts.c.code.like("BIL:%:SETTLED:%")
                )
            ).all()
        )
    assert kinds == {_settled(c): "biller_settled" for c in ("FEE01", "OVER01", "UTIL01")}
    # DAY's payable entries are gone to the settled accounts; NEXT_DAY's reversal is left.
    assert balances[payable("UTIL01")] == 400
    assert balances[payable("OVER01")] == balances[payable("FEE01")] == 0
    assert [-balances[_settled(line.biller)] for line in EXPECTED] == [4000, 960, 2500]
    # The acquirer's totals of the day (0510) are untouched by the settlement row.
    with ledger.connect() as conn:
        totals = [queries.acquirer_totals(conn, a, DAY) for a in (ACQ, HOST_ACQ)]
    assert sum(t.payments for t in totals) == sum(line.count for line in EXPECTED)
    assert sum(t.reversals for t in totals) == sum(line.reversals for line in EXPECTED)
    paid = sum(t.payment_amount - t.reversal_amount for t in totals)
    assert paid == sum(line.amount for line in EXPECTED)


def test_the_report_is_written_and_written_again_the_same(ledger: Engine, tmp_path: Path) -> None:
    _day_of_traffic(ledger)
    close_day(ledger, DAY, tmp_path, node="test")
    csv_path, json_path = paths(tmp_path, DAY)
    assert csv_path == tmp_path / "settlement" / "2026-11-22.csv"
    first = (csv_path.read_bytes(), json_path.read_bytes())
    assert first[0].decode().splitlines() == [
        "business_day,biller,currency,count,reversals,amount,fees,net,bank_account",
        "2026-11-22,FEE01,944,1,0,4000,0,4000,",
        "2026-11-22,OVER01,944,2,0,1000,40,960,",
        "2026-11-22,UTIL01,944,3,2,2500,0,2500,AZ00DEMO00000000000000000001",
    ]
    report = json.loads(first[1])
    assert report["business_day"] == "2026-11-22"
    assert [b["net"] for b in report["billers"]] == [4000, 960, 2500]
    assert report["totals"] == [
        {"currency": CUR, "count": 6, "reversals": 2, "amount": 7500, "fees": 40, "net": 7460}
    ]
    # no temporary file left beside them
    assert sorted(p.name for p in csv_path.parent.iterdir()) == [
        "2026-11-22.csv",
        "2026-11-22.json",
    ]
    # A bank account changed since: the report of the settled day stays what it was.
    with ledger.begin() as conn:
        conn.execute(
            s.billers.update().where(s.billers.c.code == "UTIL01").values(settlement_account="X")
        )
    csv_path.unlink()
    journal = _count_journal(ledger)
    again = close_day(ledger, DAY, tmp_path, node="test", again=True)
    assert again.result is Result.SETTLED and not again.posted
    assert (csv_path.read_bytes(), json_path.read_bytes()) == first
    assert _count_journal(ledger) == journal
    assert close_day(ledger, DAY, tmp_path, node="test").result is Result.ALREADY


def _count_journal(ledger: Engine) -> int:
    with ledger.connect() as conn:
        return count(conn, s.journal)


def test_an_open_day_is_refused_and_leaves_nothing(ledger: Engine, tmp_path: Path) -> None:
    _day_of_traffic(ledger)
    for day in (NEXT_DAY, NEXT_DAY + timedelta(days=3)):  # open; never opened
        with pytest.raises(DayOpen):
            close_day(ledger, day, tmp_path, node="test")
    with ledger.connect() as conn:
        assert count(conn, s.settlements) == 0
    assert not (tmp_path / "settlement").exists()


def test_a_day_that_moves_money_back_is_settled_the_other_way(
    ledger: Engine, tmp_path: Path
) -> None:
    """NEXT_DAY holds only a partial reversal of DAY's payment: the biller's net is
    negative and the transfer goes from settled back to payable."""
    _day_of_traffic(ledger)
    close_day(ledger, DAY, tmp_path, node="test")
    _close(ledger, NEXT_DAY + timedelta(days=1))
    outcome = close_day(ledger, NEXT_DAY, tmp_path, node="test")
    assert _without_ids(list(outcome.lines)) == [
        Line("UTIL01", CUR, 0, 1, -400, 0, -400, "AZ00DEMO00000000000000000001", None)
    ]
    *_, (_, amount, legs) = _settlement_rows(ledger)
    assert amount == 400
    assert legs == sorted([(payable("UTIL01"), -400), (_settled("UTIL01"), 400)])
    with ledger.connect() as conn:
        balances = queries.balances(conn)
    assert balances[payable("UTIL01")] == 0
    assert balances[_settled("UTIL01")] == -(2500 - 400)


def test_a_failed_task_leaves_the_day_to_the_next_run(ledger: Engine, tmp_path: Path) -> None:
    _day_of_traffic(ledger)
    calls: list[date] = []

    def broken(engine: Engine, day: date, home: Path) -> None:
        calls.append(day)
        raise OSError("disk full")

    failing = (*TASKS, ("payment files", broken))
    assert close_missed(ledger, tmp_path, node="a", tasks=failing) == {DAY: Result.FAILED}
    with ledger.connect() as conn:
        row = conn.execute(select(s.settlements)).one()
        assert stored_lines(conn, DAY) is not None
    assert (row.state, row.claim) == ("posted", None)
    assert row.last_error == "payment files: OSError: disk full"
    assert len(_settlement_rows(ledger)) == 3
    # The next start (or cut-over) of any node: the transfer is not made again.
    assert close_missed(ledger, tmp_path, node="b") == {DAY: Result.SETTLED}
    assert len(_settlement_rows(ledger)) == 3
    assert close_missed(ledger, tmp_path, node="b") == {}
    assert calls == [DAY]
    with ledger.connect() as conn:
        assert conn.execute(select(s.settlements.c.state)).scalar_one() == "done"


def test_a_dead_runs_day_is_taken_over_after_its_lease(ledger: Engine, tmp_path: Path) -> None:
    _day_of_traffic(ledger)
    stuck = threading.Event()
    release = threading.Event()

    def hangs(engine: Engine, day: date, home: Path) -> None:
        stuck.set()
        assert release.wait(WAIT)

    result: list[Result] = []
    first = threading.Thread(
        target=lambda: result.append(
            close_day(ledger, DAY, tmp_path, node="a", tasks=(("hangs", hangs),)).result
        )
    )
    first.start()
    try:
        assert stuck.wait(WAIT)
        assert close_day(ledger, DAY, tmp_path, node="b").result is Result.BUSY
        after_lease = datetime.now(UTC) + LEASE + timedelta(minutes=1)
        taken = close_day(ledger, DAY, tmp_path, node="b", clock=lambda: after_lease)
        assert taken.result is Result.SETTLED and not taken.posted
    finally:
        release.set()
        first.join(WAIT)
    assert result == [Result.BUSY]  # overtaken: it finishes nothing
    assert len(_settlement_rows(ledger)) == 3
    assert paths(tmp_path, DAY)[0].exists()


def test_runs_racing_for_a_day_settle_it_once(ledger: Engine, db_url: str, tmp_path: Path) -> None:
    """Several nodes (each its own engine) run the close-of-day job for the same day at
    once, as at a cut-over: one transfer, one report, the others skip the day."""
    _day_of_traffic(ledger)
    runs = 4
    engines = [make_engine(db_url) for _ in range(runs)]
    barrier = threading.Barrier(runs)
    results: list[dict[date, Result]] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(WAIT)
            results.append(close_missed(engines[i], tmp_path, node=f"node{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(runs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(WAIT)
    for engine in engines:
        engine.dispose()
    assert errors == []
    outcomes = sorted(r.get(DAY, Result.ALREADY).value for r in results)
    assert outcomes.count(Result.SETTLED.value) == 1, outcomes
    assert set(outcomes) <= {Result.SETTLED.value, Result.BUSY.value, Result.ALREADY.value}
    assert [amount for _, amount, _ in _settlement_rows(ledger)] == [4000, 960, 2500]
    with ledger.connect() as conn:
        assert conn.execute(select(s.settlements.c.state)).scalar_one() == "done"


def test_a_day_without_traffic_settles_empty(ledger: Engine, tmp_path: Path) -> None:
    _open(ledger)
    _close(ledger)
    outcome = close_day(ledger, DAY, tmp_path, node="test")
    assert outcome.result is Result.SETTLED and outcome.lines == ()
    csv_path, json_path = paths(tmp_path, DAY)
    assert csv_path.read_text().splitlines() == [
        "business_day,biller,currency,count,reversals,amount,fees,net,bank_account"
    ]
    assert json.loads(json_path.read_text()) == {
        "business_day": "2026-11-22",
        "billers": [],
        "totals": [],
    }


def test_the_settled_account_is_made_on_first_use() -> None:
    assert acc.account_row("BIL:UTIL01:SETTLED:944") == (
        "BIL:UTIL01:SETTLED:944",
        "biller_settled",
        "UTIL01",
        "944",
    )
