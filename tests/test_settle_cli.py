"""``billswitch settle --business-day D`` (issue 12, "Settlement"), on SQLite and PostgreSQL.

A missed day settles by hand; again, nothing moves and the report is the same bytes;
processes racing to settle one day move its money once; an open day, a bad date and a
missing database are refused with one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, create_engine, select

from switch.app import prepare_database
from switch.business_day import business_day, roll_over
from switch.cardholder import Hasher, load_or_create_key
from switch.cli import main
from switch.config import load
from switch.ledger import schema as s
from switch.ledger.reference import load_reference
from switch.settlement_report import paths
from tests.ledger.ledger_support import payment, record_one, reversal

REPO = Path(__file__).resolve().parents[1]
TODAY = business_day(datetime.now(UTC), load().cutover)  # the embedded cut-over, UTC
DAY = TODAY - timedelta(days=2)


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    structlog.reset_defaults()


@pytest.fixture
def home(tmp_path: Path, db_url: str) -> Iterator[Path]:
    """The demo data; DAY with payments to UTIL01 and MOB01 and a reversal, closed;
    TODAY open."""
    (tmp_path / "billswitch.toml").write_text('demo_data = true\n[hsm]\nlmk = "test"\n')
    os.environ["BILLSWITCH_DB"] = db_url
    try:
        settings = load(tmp_path / "billswitch.toml", home=tmp_path)
        prepare_database(settings, Hasher(load_or_create_key(tmp_path / "hash.key")))
        engine = create_engine(db_url)
        _a_day(engine)
        engine.dispose()
        yield tmp_path
    finally:
        del os.environ["BILLSWITCH_DB"]


def _a_day(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        roll_over(conn, DAY, now)
        billers = load_reference(conn).billers
    util = payment(billers["UTIL01"], "1000002", 5000, day=DAY)
    orders = [util, payment(billers["MOB01"], "5550001", 300, day=DAY), reversal(util, kept=1000)]
    for order in orders:
        order.business_day = DAY
        assert record_one(engine, order, now).code == "00"
    with engine.begin() as conn:
        roll_over(conn, TODAY, now)


def _settle(home: Path, day: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["settle", "--business-day", day, "--home", str(home)])
    out, err = capsys.readouterr()
    return code, out, err


def _settlement_rows() -> list[tuple[int, str]]:
    engine = create_engine(os.environ["BILLSWITCH_DB"])
    try:
        with engine.connect() as conn:
            j, e = s.journal.c, s.entries.c
            return list(
                conn.execute(
                    select(j.amount, e.account_code)
                    .join(s.entries, e.journal_id == j.id)
                    .where(j.kind == "settlement", e.amount < 0)
                    .order_by(e.account_code)
                )
            )
    finally:
        engine.dispose()


def test_a_missed_day_settles_by_hand_once(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _settle(home, DAY.isoformat(), capsys)
    assert (code, err) == (0, "")
    csv_path, json_path = paths(home, DAY)
    assert out.strip() == (
        f"business day {DAY} settled: 2 biller lines, net 1300 in 944;"
        f" report {csv_path} and {json_path}"
    )
    assert _settlement_rows() == [(300, "BIL:MOB01:SETTLED:944"), (1000, "BIL:UTIL01:SETTLED:944")]
    report = (csv_path.read_bytes(), json_path.read_bytes())
    code, out, err = _settle(home, DAY.isoformat(), capsys)
    assert (code, err) == (0, "")
    assert "already settled, nothing moved; files written again" in out
    assert (csv_path.read_bytes(), json_path.read_bytes()) == report
    assert len(_settlement_rows()) == 2


def test_a_day_nobody_opened_settles_empty(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quiet = DAY - timedelta(days=3)
    code, out, err = _settle(home, quiet.isoformat(), capsys)
    assert (code, err) == (0, "")
    assert f"business day {quiet} settled: 0 biller lines, net nothing" in out
    assert paths(home, quiet)[0].read_text().count("\n") == 1  # the header alone


def test_open_days_are_refused(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for day in (TODAY, TODAY + timedelta(days=1)):
        code, out, err = _settle(home, day.isoformat(), capsys)
        assert code == 2 and out == ""
        assert err == (
            f"billswitch settle: business day {day} is open: it closes at the cut-over"
            " (23:00 UTC); settle it after that\n"
        )
    assert not (home / "settlement").exists()


def test_bad_date_and_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["settle", "--business-day", "2026-13-01", "--home", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--business-day: '2026-13-01' is not a date (YYYY-MM-DD)" in capsys.readouterr().err
    if not db_url.startswith("sqlite"):
        return
    code, _, err = _settle(tmp_path / "nothing", "2026-11-22", capsys)
    assert code == 2
    assert err.startswith("billswitch settle: no database at ")
    assert not (tmp_path / "nothing" / "billswitch.db").exists()


def test_processes_racing_settle_a_day_once(home: Path) -> None:
    """Four ``billswitch settle`` processes for one day at once (as nodes at a cut-over):
    one transfer; each of the others finds it done or being done."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "switch.cli", "settle", "--business-day", DAY.isoformat()]
    procs = [
        subprocess.Popen(
            [*argv, "--home", str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    settled = [out for out, _ in outputs if " settled: " in out]
    assert len(settled) == 1, outputs
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 or "is being settled by" in err, (out, err)
        assert "Traceback" not in err
    assert _settlement_rows() == [(300, "BIL:MOB01:SETTLED:944"), (1000, "BIL:UTIL01:SETTLED:944")]
