"""Payments and reversals made over ISO 8583 are what the CLI's signed payment file of the
day says, under the receipt numbers the ATM got; a reversal after the day's close is in
the next day's file; the switch made its signing key at its first start (issue 12)."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from e2e_support import call

from switch.business_day import roll_over
from switch.cli import main
from switch.debt_signing import verify
from switch.ledger import schema as s
from switch.ledger.database import make_engine
from tests.client import IsoClient, bill_data, payment, reversal
from tests.switch_process import SwitchProcess


def _close_day(url: str) -> date:
    """What the cut-over does: open the next day, close the open one; returns it."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            day = (
                conn.execute(
                    s.business_days.select()
                    .with_only_columns(s.business_days.c.day)
                    .where(s.business_days.c.state == "open")
                    .order_by(s.business_days.c.day.desc())
                )
                .scalars()
                .first()
            )
            assert day is not None
            assert roll_over(conn, day + timedelta(days=1), datetime.now(UTC)) == [day]
        return day
    finally:
        engine.dispose()


def _export(switch: SwitchProcess, day: date, capsys: pytest.CaptureFixture[str]) -> Path:
    where = ["--home", str(switch.home), "--db", switch.db_url]
    assert main(["payments", "export", "--business-day", day.isoformat(), *where]) == 0
    capsys.readouterr()
    return switch.home / "payments" / "UTIL01" / f"UTIL01-{day.isoformat()}.xml"


def _public_key(switch: SwitchProcess, capsys: pytest.CaptureFixture[str]) -> bytes:
    assert main(["payments", "public-key", "--home", str(switch.home)]) == 0
    return bytes.fromhex(capsys.readouterr().out.splitlines()[1].split()[1])


def _signed(path: Path, key: bytes) -> bool:
    return verify(key, Path(f"{path}.sig").read_bytes(), path.read_bytes())


def test_a_day_over_iso_is_the_days_signed_file_and_the_next_names_its_reversal(
    switch: SwitchProcess, atm: IsoClient, capsys: pytest.CaptureFixture[str]
) -> None:
    made = switch.home / "signing.key"
    assert stat.S_IMODE(made.stat().st_mode) == 0o600  # made by the first start
    key = _public_key(switch, capsys)

    first = payment("1000001", 12345)
    rn = bill_data(call(atm, first))["RN"]
    gone = payment("1000002", 1000)
    rn_gone = bill_data(call(atm, gone))["RN"]
    call(atm, reversal(gone))
    day = _close_day(switch.db_url)
    path = _export(switch, day, capsys)
    text = path.read_text(encoding="utf-8")
    assert 'count="1" total="12345"' in text
    assert f'<payment id="{rn}" account="1000001" amount="12345"' in text
    assert rn_gone not in text and "<reversal" not in text
    assert _signed(path, key)
    before = path.read_bytes()

    call(atm, reversal(first))  # the day is closed: it belongs to the next one
    next_day = _close_day(switch.db_url)
    assert next_day == day + timedelta(days=1)
    later = _export(switch, next_day, capsys)
    assert f'  <reversal id="{rn}" amount="12345"/>\n' in later.read_text(encoding="utf-8")
    assert 'count="0" total="0"' in later.read_text(encoding="utf-8")
    assert _signed(later, key)
    assert _export(switch, day, capsys).read_bytes() == before
    assert made.read_bytes() and _public_key(switch, capsys) == key  # never made again
